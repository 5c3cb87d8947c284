import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import request from 'supertest';
import { mountDevServer } from '../src/dev-mount.js';
import { silentLogger } from '../src/http/logger.js';
import type { PresenceServer } from '../src/index.js';
import { bodyOf, type StateBody } from './support/http-fixtures.js';
import { assertNthMessageId } from './support/message-ids.js';

/**
 * The demo as `npm start` (ember serve) mounts it: the shipped demo config and the demo login on the
 * memory store. Users: 1 ann, 2 bob, 3 cyd (group 1), 4 dee (no group); team 1 = ann + bob.
 */

const app = express();
let presence: PresenceServer;
const cookies = new Map<string, string>();
const SAME_ORIGIN = { 'Sec-Fetch-Site': 'same-origin' };
/** When ann's first enter ran: the demo server is on the real clock, and that enter creates the backlogs. */
const annEntered = { from: 0, to: 0 };

before(async () => {
  const saved = process.env['REDIS_URL'];
  delete process.env['REDIS_URL'];
  try {
    presence = await mountDevServer(app, { logger: silentLogger });
  } finally {
    if (saved !== undefined) process.env['REDIS_URL'] = saved;
  }
  for (const username of ['ann', 'bob', 'cyd', 'dee']) {
    const res = await request(app)
      .post('/presence/demo-login')
      .set(SAME_ORIGIN)
      .send({ username })
      .expect(200);
    cookies.set(username, String(res.headers['set-cookie']).split(';')[0]!);
  }
});
after(() => presence.close());

function enter(username: string, channels: string[]) {
  return request(app)
    .post('/presence/update')
    .set(SAME_ORIGIN)
    .set('Cookie', cookies.get(username)!)
    .send({ client_id: `${username}-tab`, present_channels: channels });
}

function get(username: string | null, channels: string[]) {
  const query = channels
    .map((c) => `channels[]=${encodeURIComponent(c)}`)
    .join('&');
  const req = request(app).get(`/presence/get?${query}`);
  return username ? req.set('Cookie', cookies.get(username)!) : req;
}

describe('the ember serve mount (demo config + demo login)', () => {
  it('lets members reply in topics, teams see their own room, and everyone count visitors', async () => {
    annEntered.from = Date.now();
    await enter('ann', [
      '/site/online',
      '/topic/1/reply',
      '/team/1',
      '/stats/visitors',
    ]).expect(200, {
      '/site/online': true,
      '/topic/1/reply': true,
      '/team/1': true,
      '/stats/visitors': true,
    });
    annEntered.to = Date.now();
    await enter('dee', [
      '/site/online',
      '/topic/1/reply',
      '/team/1',
      '/team/2',
      '/topic/x/reply',
    ]).expect(200, {
      '/site/online': true,
      '/topic/1/reply': false,
      '/team/1': false,
      '/team/2': true,
      '/topic/x/reply': false,
    });
  });

  it('shows an anonymous visitor who is online and how many visit, nothing private', async () => {
    const res = await get(null, [
      '/site/online',
      '/stats/visitors',
      '/team/1',
      '/topic/1/reply',
    ]).expect(200);
    const states = bodyOf<Record<string, StateBody | null>>(res);
    assert.deepEqual(
      states['/site/online']?.users?.map((u) => u.username),
      ['ann', 'dee'],
    );
    const visitors = states['/stats/visitors'];
    // Ann's enter is the only message of the channel: the first id of a backlog her enter created.
    const lastId = assertNthMessageId(
      visitors?.last_message_id,
      1,
      annEntered,
      'last_message_id of /stats/visitors',
    );
    assert.deepEqual(visitors, { count: 1, last_message_id: lastId });
    assert.equal(states['/team/1'], null);
    assert.equal(states['/topic/1/reply'], null);
  });

  it('keeps team 1 invisible to dee and visible to bob', async () => {
    const dee = bodyOf<Record<string, StateBody | null>>(
      await get('dee', ['/team/1']).expect(200),
    );
    assert.equal(dee['/team/1'], null);
    const bob = bodyOf<Record<string, StateBody | null>>(
      await get('bob', ['/team/1']).expect(200),
    );
    assert.equal(bob['/team/1']?.count, 1);
  });

  it('serves demo avatars for the avatar templates it hands out', async () => {
    const res = await request(app).get('/presence/demo-users').expect(200);
    const { users } = bodyOf<{ users: { avatar_template: string }[] }>(res);
    const url = users[0]!.avatar_template.replace('{size}', '64');
    await request(app).get(url).expect(200).expect('Content-Type', /svg/);
  });
});
