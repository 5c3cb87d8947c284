import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Request } from 'express';
import request from 'supertest';
import { createApp, type PresenceApp } from '../src/index.js';
import type { CurrentUser } from '../src/core/types.js';
import {
  bodyOf,
  fakeClock,
  SAME_SITE_HEADERS,
  type StateBody,
} from './support/http-fixtures.js';
import { ScratchRedis } from './support/http-redis-server.js';

/**
 * docs/protocol.md, "Message ids": a store that loses its state (here a real Redis killed and started
 * again empty) must not leave a ghost. Followers that last saw id L before the reset poll from L
 * afterwards; the first message they get must not be L + 1 (which a client, ours or Discourse's, would
 * apply as if nothing happened), so they refetch, and the state they refetch is right.
 */

const CHANNEL = '/room/1';
const BUS = `/presence${CHANNEL}`;

/** Any positive `X-Test-User` id is a user `u<id>`. */
function idUser(req: Request): CurrentUser | null {
  const id = Number(req.get('x-test-user'));
  if (!Number.isSafeInteger(id) || id <= 0) return null;
  return {
    id,
    username: `u${id}`,
    name: null,
    avatar_template: '',
    groupIds: [],
  };
}

interface WireMessage {
  message_id: number;
  channel: string;
  data: unknown;
}

/** What a Discourse client does with a message: apply it only when it is `last + 1`, else refetch. */
function discourseClientResyncs(lastId: number, message: WireMessage): boolean {
  return message.message_id !== lastId + 1;
}

describe('a store reset (Redis restarted empty)', () => {
  let redis: ScratchRedis;
  let app: PresenceApp;
  const clock = fakeClock();

  before(async () => {
    redis = await ScratchRedis.start();
    app = createApp({
      redisUrl: redis.url,
      clock: clock.now,
      currentUser: idUser,
      sweepIntervalMs: 0,
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
    });
    app.presence.registerPrefix('room', () => ({ public: true }));
  });

  after(async () => {
    await app.presence.close();
    await redis.destroy();
  });

  function update(userId: number, body: Record<string, unknown>) {
    return request(app)
      .post('/presence/update')
      .set(SAME_SITE_HEADERS)
      .set('X-Test-User', String(userId))
      .send({ client_id: `tab-${userId}`, ...body });
  }

  async function state(): Promise<StateBody> {
    const res = await request(app)
      .get(`/presence/get?channel=${encodeURIComponent(CHANNEL)}`)
      .expect(200);
    return bodyOf<StateBody>(res);
  }

  async function untilHealthy(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if ((await request(app).get('/healthz')).status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail('the server did not reconnect to Redis within 10 s');
  }

  it('followers that lived through it see a gap at once and refetch a state without the ghost', async () => {
    for (let id = 41; id <= 46; id++)
      await update(id, { present_channels: [CHANNEL] }).expect(200);
    const before = await state();
    assert.equal(before.count, 6);
    const lastSeen = before.last_message_id!;

    // Redis dies; user 46 leaves meanwhile, and the leave is lost (503).
    await redis.stop();
    await update(46, { leave_channels: [CHANNEL] }).expect(503);
    // Redis comes back EMPTY (no persistence), a little later.
    await redis.resume();
    await untilHealthy();
    clock.advance(5_000);

    // The others' heartbeats bring them back, and someone new arrives: new messages in a new backlog.
    for (let id = 41; id <= 45; id++)
      await update(id, { present_channels: [CHANNEL] }).expect(200);
    await update(47, { present_channels: [CHANNEL] }).expect(200);

    // A follower polls from the id it saw before the reset.
    const res = await request(app)
      .post('/message-bus/follower/poll?dlp=t')
      .set('Content-Type', 'application/json')
      .send({ [BUS]: lastSeen, __seq: 1 })
      .expect(200);
    const messages = (res.body as WireMessage[]).filter(
      (m) => m.channel === BUS,
    );
    assert.ok(messages.length > 0, 'the follower gets the new messages');
    assert.ok(
      discourseClientResyncs(lastSeen, messages[0]!),
      `the first message after the reset (${messages[0]!.message_id}) must not look like the next one after ${lastSeen}`,
    );
    assert.ok(
      messages[0]!.message_id > lastSeen,
      'new ids are above every id before the reset, so nothing is taken for an old message',
    );

    // What the follower refetches: everyone but the ghost.
    const after = await state();
    assert.deepEqual(
      after.users?.map((u) => u.id).sort((a, b) => a - b),
      [41, 42, 43, 44, 45, 47],
    );
    assert.ok(after.last_message_id! > lastSeen);
  });
});
