import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import express from 'express';
import request from 'supertest';
import { createApp, createPresenceServer, MemoryStore } from '../src/index.js';
import { isStoreUnavailable } from '../src/http/error-middleware.js';
import { createJsonLogger } from '../src/http/logger.js';
import {
  allowedUser,
  CHANNELS,
  errorOf,
  groupMember,
  matrixApp,
  outsider,
  publicFields,
  registerMatrix,
  SAME_SITE_HEADERS,
  testOptions,
  untilPollHeld,
} from './support/http-fixtures.js';
import { messageIds } from './support/message-ids.js';
import { flakyStore } from './support/flaky-store.js';

describe('GET /healthz', () => {
  it('is 200 {ok:true} when the store answers, 503 JSON when it does not, and recovers', async () => {
    const { store, setDown } = flakyStore();
    const app = createApp(testOptions({ store }));
    try {
      await request(app).get('/healthz').expect(200, { ok: true });
      setDown(true);
      const res = await request(app).get('/healthz').expect(503);
      assert.equal(errorOf(res).error_type, 'service_unavailable');
      setDown(false);
      await request(app).get('/healthz').expect(200);
    } finally {
      await app.presence.close();
      await store.close();
    }
  });
});

describe('store unavailable', () => {
  it('answers 503 service_unavailable (never 500) on every endpoint, then recovers by itself', async () => {
    const { store, setDown } = flakyStore();
    const app = createApp(testOptions({ store }));
    registerMatrix(app.presence);
    try {
      setDown(true);
      const get = await request(app)
        .get(`/presence/get?channels[]=${encodeURIComponent(CHANNELS.public)}`)
        .expect(503);
      assert.deepEqual(get.body, {
        errors: ['The presence service is temporarily unavailable.'],
        error_type: 'service_unavailable',
      });
      await request(app)
        .post('/presence/update')
        .set(SAME_SITE_HEADERS)
        .set('X-Test-User', '1')
        .send({ client_id: 'c', present_channels: [CHANNELS.public] })
        .expect(503);
      await request(app)
        .post('/message-bus/c/poll?dlp=t')
        .send({ '/x': -1 })
        .expect(503);
      setDown(false);
      await request(app)
        .post('/presence/update')
        .set(SAME_SITE_HEADERS)
        .set('X-Test-User', '1')
        .send({ client_id: 'c', present_channels: [CHANNELS.public] })
        .expect(200, { [CHANNELS.public]: true });
    } finally {
      await app.presence.close();
      await store.close();
    }
  });

  it('recognises ioredis unavailability errors, and only those', () => {
    for (const message of [
      "Stream isn't writeable and enableOfflineQueue options is false",
      'Command timed out',
      'Connection is closed.',
      'Reached the max retries per request limit (which is 1). Refer to "maxRetriesPerRequest" option for details.',
    ]) {
      assert.equal(isStoreUnavailable(new Error(message)), true, message);
    }
    assert.equal(
      isStoreUnavailable(Object.assign(new Error('x'), { code: 'ECONNRESET' })),
      true,
    );
    assert.equal(
      isStoreUnavailable(new TypeError('undefined is not a function')),
      false,
    );
    assert.equal(
      isStoreUnavailable(new Error('ERR wrong number of arguments')),
      false,
    );
  });
});

describe('createPresenceServer: the server-side API', () => {
  it('presents, leaves, embeds state per user and publishes', async () => {
    const now = Date.UTC(2026, 0, 1);
    const msgId = messageIds(now);
    const presence = createPresenceServer(testOptions({ clock: () => now }));
    registerMatrix(presence);
    try {
      await presence.present(allowedUser, CHANNELS.userList, 'server-side');
      assert.deepEqual(
        await presence.stateFor(CHANNELS.userList, allowedUser),
        {
          users: [publicFields(allowedUser)],
          count: 1,
          last_message_id: msgId(1),
        },
      );
      assert.equal(await presence.stateFor(CHANNELS.userList, outsider), null);
      assert.equal(
        await presence.stateFor(CHANNELS.userList),
        null,
        'anonymous by default',
      );
      await assert.rejects(
        presence.present(groupMember, CHANNELS.userList, 'x'),
        { name: 'InvalidAccess' },
      );
      await presence.leave(allowedUser, CHANNELS.userList, 'server-side');
      assert.equal(
        (await presence.stateFor(CHANNELS.userList, allowedUser))?.count,
        0,
      );

      const message = await presence.publish(
        '/notifications/1',
        { unread: 3 },
        { userIds: [1] },
      );
      assert.equal(message.message_id, msgId(1));
      await assert.rejects(
        presence.publish('/presence/pub/room', {}),
        TypeError,
      );
    } finally {
      await presence.close();
    }
  });

  it('sweeps expired clients with the injected clock', async () => {
    let now = Date.UTC(2026, 0, 1);
    const presence = createPresenceServer(testOptions({ clock: () => now }));
    registerMatrix(presence);
    try {
      await presence.present(allowedUser, CHANNELS.public, 'c');
      now += 61_000;
      const result = await presence.sweep();
      assert.equal(result.expiredClients, 1);
      assert.equal((await presence.stateFor(CHANNELS.public))?.count, 0);
    } finally {
      await presence.close();
    }
  });

  it('invalidateConfig makes a revoked grant take effect at once', async () => {
    const presence = createPresenceServer(testOptions());
    let allowed = [1];
    presence.registerPrefix('room', () => ({ allowedUserIds: allowed }));
    try {
      assert.notEqual(await presence.stateFor('/room/1', allowedUser), null);
      allowed = [2];
      assert.notEqual(
        await presence.stateFor('/room/1', allowedUser),
        null,
        'still cached',
      );
      await presence.invalidateConfig('/room/1');
      assert.equal(await presence.stateFor('/room/1', allowedUser), null);
    } finally {
      await presence.close();
    }
  });

  it('rejects a duplicate or invalid prefix', async () => {
    const presence = createPresenceServer(testOptions());
    try {
      presence.registerPrefix('site', () => null);
      assert.throws(() => presence.registerPrefix('site', () => null));
      assert.throws(() => presence.registerPrefix('a/b', () => null));
    } finally {
      await presence.close();
    }
  });

  it('closes idempotently, and leaves a store it was given open', async () => {
    const store = new MemoryStore();
    const presence = createPresenceServer(testOptions({ store }));
    await Promise.all([presence.close(), presence.close()]);
    await store.ping();
    await store.close();
  });

  it('works mounted under a path prefix in a host app', async () => {
    const presence = createPresenceServer(testOptions());
    registerMatrix(presence);
    const host = express();
    host.use('/api', presence.router);
    try {
      const res = await request(host)
        .get(
          `/api/presence/get?channels[]=${encodeURIComponent(CHANNELS.public)}`,
        )
        .expect(200);
      assert.ok(CHANNELS.public in (res.body as object));
      await request(host).get('/api/healthz').expect(200);
    } finally {
      await presence.close();
    }
  });

  it('answers held long-polls when closed', async () => {
    const app = matrixApp({ longPollMs: 20_000 });
    const poll = request(app)
      .post('/message-bus/held/poll')
      .set('Dont-Chunk', 'true')
      .send({ '/presence/pub/room': null })
      .then((res) => res);
    // Wait until the poll is actually held (not for any timeout), then close.
    await untilPollHeld(app.presence);
    assert.equal(app.presence.stats().heldPolls, 1);
    const started = Date.now();
    await app.presence.close();
    const res = await poll;
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started < 2000);
  });

  for (const option of [
    { maxHeldPolls: 1 },
    // One poll of one channel is all one address may follow.
    { maxFollowedChannelsPerPeer: 1 },
  ]) {
    it(`answers polls at once beyond ${Object.keys(option)[0]}`, async () => {
      const app = matrixApp({ longPollMs: 20_000, ...option });
      const held = request(app)
        .post('/message-bus/first/poll')
        .set('Dont-Chunk', 'true')
        .send({ '/presence/pub/room': null })
        .then((res) => res);
      await untilPollHeld(app.presence);
      try {
        // Answered at once, not held for the 20 s long poll.
        const second = await request(app)
          .post('/message-bus/second/poll')
          .set('Dont-Chunk', 'true')
          .timeout(2000)
          .send({ '/presence/pub/room': null });
        assert.equal(second.status, 200);
        assert.deepEqual(second.body, []);
        assert.equal(app.presence.stats().heldPolls, 1);
      } finally {
        await app.presence.close();
        await held;
      }
    });
  }
});

describe('logging', () => {
  it('writes JSON lines and never logs below its level', () => {
    const lines: string[] = [];
    const logger = createJsonLogger({
      level: 'info',
      write: (line) => lines.push(line),
      now: () => 0,
    });
    logger.debug('hidden');
    logger.info('listening', { url: 'http://127.0.0.1:1' });
    logger.error('failed', { error: new Error('boom') });
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(first, {
      time: '1970-01-01T00:00:00.000Z',
      level: 'info',
      msg: 'listening',
      url: 'http://127.0.0.1:1',
    });
    const second = JSON.parse(lines[1]!) as {
      error: { message: string; stack: string };
    };
    assert.equal(second.error.message, 'boom');
    assert.ok(lines.every((line) => line.endsWith('\n')));
  });

  it('logs a 500 with its stack while the client gets none', async () => {
    const lines: string[] = [];
    const app = createApp(
      testOptions({
        logger: createJsonLogger({ write: (line) => lines.push(line) }),
        currentUser: () => {
          throw new Error('hook exploded');
        },
      }),
    );
    try {
      const res = await request(app)
        .get('/presence/get?channels[]=/pub/x')
        .expect(500);
      assert.doesNotMatch(res.text, /exploded/);
      const logged = lines.map(
        (l) =>
          JSON.parse(l) as {
            level: string;
            error?: { message: string; stack?: string };
          },
      );
      const failure = logged.find((l) => l.level === 'error');
      assert.equal(failure?.error?.message, 'hook exploded');
      assert.match(failure?.error?.stack ?? '', /hook exploded/);
    } finally {
      await app.presence.close();
    }
  });
});

describe('options', () => {
  it('rejects a nonsensical rate limit with an error naming the option', () => {
    assert.throws(
      () => createPresenceServer(testOptions({ rateLimit: { limit: 0 } })),
      /rateLimit\.limit/,
    );
    assert.throws(
      () => createPresenceServer(testOptions({ rateLimit: { windowMs: -1 } })),
      /rateLimit\.windowMs/,
    );
    // The old name of the count: refused, never silently replaced by the default.
    assert.throws(
      () =>
        createPresenceServer(
          testOptions({ rateLimit: { max: 5 } as { limit?: number } }),
        ),
      /rename `max` to `limit`/,
    );
    // The core handler only takes whole milliseconds: a fraction must fail here, not on every update.
    assert.throws(
      () => createPresenceServer(testOptions({ rateLimit: { windowMs: 1.5 } })),
      /rateLimit\.windowMs/,
    );
  });

  it('can disable the rate limit', async () => {
    const app = matrixApp({ rateLimit: false });
    try {
      for (let i = 0; i < 25; i++) {
        await request(app)
          .post('/presence/update')
          .set(SAME_SITE_HEADERS)
          .set('X-Test-User', '1')
          .send({ client_id: 'c' })
          .expect(200);
      }
    } finally {
      await app.presence.close();
    }
  });
});
