import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createApp, type PresenceApp } from '../src/index.js';
import {
  allowedUser,
  bodyOf,
  CHANNELS,
  errorOf,
  fakeClock,
  registerMatrix,
  SAME_SITE_HEADERS,
  testOptions,
  type StateBody,
  untilPollHeld,
} from './support/http-fixtures.js';
import { ScratchRedis } from './support/http-redis-server.js';
import {
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
  REDIS_URL,
} from './support/redis-fixture.js';

/**
 * The HTTP layer on Redis: state and rate limits shared by several server processes, and an outage
 * that answers 503 fast and heals by itself.
 */

function update(
  app: PresenceApp,
  body: Record<string, unknown> = { client_id: 'tab' },
) {
  return request(app)
    .post('/presence/update')
    .set(SAME_SITE_HEADERS)
    .set('X-Test-User', String(allowedUser.id))
    .send(body);
}

describe('two server instances sharing one Redis', () => {
  const prefix = randomKeyPrefix();
  const admin = connectTestRedis();
  const clock = fakeClock();
  let a: PresenceApp;
  let b: PresenceApp;

  before(() => {
    const options = testOptions({
      redisUrl: REDIS_URL,
      redisKeyPrefix: prefix,
      clock: clock.now,
    });
    a = createApp({ ...options, rateLimit: { limit: 5, windowMs: 10_000 } });
    b = createApp({ ...options, rateLimit: { limit: 5, windowMs: 10_000 } });
    registerMatrix(a.presence);
    registerMatrix(b.presence);
  });

  after(async () => {
    await a.presence.close();
    await b.presence.close();
    await deleteKeys(admin, `${prefix}*`);
    await admin.quit();
  });

  it('share presence state: entered through one, visible through the other', async () => {
    await update(a, {
      client_id: 'tab-a',
      present_channels: [CHANNELS.public],
    }).expect(200);
    const res = await request(b)
      .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.public)}`)
      .expect(200);
    assert.equal(bodyOf<StateBody>(res).count, 1);
    assert.equal(bodyOf<StateBody>(res).users?.[0]?.username, 'ann');
  });

  it('share one rate limit per user', async () => {
    clock.advance(60_000); // a fresh window
    for (let i = 0; i < 3; i++) await update(a).expect(200);
    for (let i = 0; i < 2; i++) await update(b).expect(200);
    const limited = await update(b).expect(429);
    assert.equal(errorOf(limited).error_type, 'rate_limit');
    assert.ok(Number(limited.headers['retry-after']) >= 1);
    await update(a).expect(429);
    clock.advance(10_000);
    await update(a).expect(200);
  });

  it('answers /healthz from Redis', async () => {
    await request(a).get('/healthz').expect(200, { ok: true });
  });
});

describe('Redis outage', () => {
  let redis: ScratchRedis;
  let app: PresenceApp;

  before(async () => {
    redis = await ScratchRedis.start();
    app = createApp(testOptions({ redisUrl: redis.url, longPollMs: 20_000 }));
    registerMatrix(app.presence);
  });

  after(async () => {
    await app.presence.close();
    await redis.destroy();
  });

  it('fails fast with 503 JSON while Redis is down and recovers by itself when it returns', async () => {
    await update(app, {
      client_id: 'tab',
      present_channels: [CHANNELS.public],
    }).expect(200);
    await redis.stop();

    for (const send of [
      () =>
        update(app, { client_id: 'tab', present_channels: [CHANNELS.public] }),
      () =>
        request(app).get(
          `/presence/get?channels[]=${encodeURIComponent(CHANNELS.public)}`,
        ),
      () => request(app).get('/healthz'),
      () =>
        request(app).post('/message-bus/outage/poll?dlp=t').send({ '/x': -1 }),
      // A presence channel's access check reads the store too: an outage is a 503, never "last id 0".
      () =>
        request(app)
          .post('/message-bus/outage/poll?dlp=t')
          .send({ '/presence/pub/room': -1 }),
    ]) {
      const started = Date.now();
      const res = await send();
      const elapsed = Date.now() - started;
      assert.equal(res.status, 503, res.text);
      assert.equal(errorOf(res).error_type, 'service_unavailable');
      assert.doesNotMatch(
        res.text,
        /ECONNREFUSED|at .*\.(ts|js)/,
        'no internals leak',
      );
      assert.ok(elapsed < 4000, `answered within seconds (took ${elapsed} ms)`);
    }

    await redis.resume();
    // Wait for the background reconnect (bounded), without restarting anything.
    const deadline = Date.now() + 10_000;
    let healthy = false;
    while (!healthy && Date.now() < deadline) {
      healthy = (await request(app).get('/healthz')).status === 200;
      if (!healthy) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(healthy, 'the server reconnected to Redis by itself');

    // Redis lost its data (no persistence): the heartbeat brings presence back.
    await update(app, {
      client_id: 'tab',
      present_channels: [CHANNELS.public],
    }).expect(200, { [CHANNELS.public]: true });
    const state = await request(app)
      .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.public)}`)
      .expect(200);
    assert.equal(bodyOf<StateBody>(state).count, 1);

    // Pub/sub works again too: a held poll is woken by a change published after the outage.
    const poll = request(app)
      .post('/message-bus/after-outage/poll')
      .set('Dont-Chunk', 'true')
      .send({ '/presence/pub/room': bodyOf<StateBody>(state).last_message_id! })
      .then((res) => res);
    await untilPollHeld(app.presence, 2000);
    await update(app, {
      client_id: 'tab',
      leave_channels: [CHANNELS.public],
    }).expect(200);
    const woken = await poll;
    assert.equal(woken.status, 200);
    assert.deepEqual((woken.body as { data: unknown }[])[0]?.data, {
      leaving_user_ids: [allowedUser.id],
    });
  });
});

describe('createPresenceServer on Redis', () => {
  it('does not leave a Redis connection open when an option is invalid', () => {
    assert.throws(
      () =>
        createApp(
          testOptions({ redisUrl: REDIS_URL, rateLimit: { limit: -1 } }),
        ),
      /rateLimit\.limit/,
    );
    // If the connection leaked, this test file would never exit (the runner would time it out).
  });
});
