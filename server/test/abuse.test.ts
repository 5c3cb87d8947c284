import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createApp, type PresenceApp } from '../src/index.js';
import {
  DEFAULT_MAX_BYTES_PER_POLL,
  DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER,
} from '../src/core/message-bus/index.js';
import { DEFAULT_EMPTY_CHANNEL_TTL_MS } from '../src/core/retention.js';
import { PROFILE_TTL_MS } from '../src/store/redis-store.js';
import {
  allowedUser,
  SAME_SITE_HEADERS,
  testOptions,
} from './support/http-fixtures.js';
import { openPoll, until } from './support/bus-http.js';
import {
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
  REDIS_URL,
} from './support/redis-fixture.js';

/**
 * What one hostile anonymous client can cost the server (issue: reliability under abuse), on Redis, with
 * the server's defaults. Each test prints the figures it measured.
 */

/** Keys, bytes (MEMORY USAGE) and the longest TTL Redis holds under `prefix` (TTL -1: none). */
async function redisFootprint(
  redis: ReturnType<typeof connectTestRedis>,
  prefix: string,
  /** Keys left out of the figures (matched on the key without the prefix). */
  except?: RegExp,
): Promise<{
  keys: number;
  bytes: number;
  maxTtlMs: number;
  withoutTtl: string[];
}> {
  let cursor = '0';
  let keys = 0;
  let bytes = 0;
  let maxTtlMs = 0;
  const withoutTtl: string[] = [];
  do {
    const [next, batch] = await redis.scan(
      cursor,
      'MATCH',
      `${prefix}*`,
      'COUNT',
      1000,
    );
    cursor = next;
    for (const key of batch) {
      if (except?.test(key.slice(prefix.length))) continue;
      keys += 1;
      bytes += Number((await redis.memory('USAGE', key)) ?? 0);
      const ttl = await redis.pttl(key);
      if (ttl < 0) withoutTtl.push(key.slice(prefix.length));
      else maxTtlMs = Math.max(maxTtlMs, ttl);
    }
  } while (cursor !== '0');
  return { keys, bytes, maxTtlMs, withoutTtl };
}

interface WireMessage {
  message_id: number;
  channel: string;
}

describe('abuse: one anonymous poll asking every channel from id 0', () => {
  const prefix = randomKeyPrefix();
  const admin = connectTestRedis();
  let app: PresenceApp;
  const CHANNELS = Array.from({ length: 50 }, (_, i) => `/big/${i}`);
  const PER_CHANNEL = 200;
  const PAYLOAD = 'x'.repeat(1_000);

  before(async () => {
    app = createApp(
      testOptions({ redisUrl: REDIS_URL, redisKeyPrefix: prefix }),
    );
    // 50 channels × 200 messages of 1 KB: a 10 MB backlog, readable by anyone.
    for (let n = 0; n < PER_CHANNEL; n++) {
      await Promise.all(
        CHANNELS.map((channel) =>
          app.presence.publish(channel, { n, payload: PAYLOAD }),
        ),
      );
    }
  });

  after(async () => {
    await app.presence.close();
    await deleteKeys(admin, `${prefix}*`);
    await admin.quit();
  });

  function pollAll(positions: Record<string, number>) {
    return request(app)
      .post('/message-bus/attacker/poll')
      .set('Content-Type', 'application/json')
      .set('Dont-Chunk', 'true')
      .send({ ...positions, __seq: 1 });
  }

  it('gets a bounded answer at once, and the rest on the next polls, without a gap', async () => {
    const started = Date.now();
    const first = await pollAll(
      Object.fromEntries(CHANNELS.map((c) => [c, 0])),
    ).expect(200);
    const elapsed = Date.now() - started;
    const bytes = Buffer.byteLength(first.text);
    console.log(
      `# one poll of 50 × 200 × 1 KB from id 0: ${bytes} bytes in ${elapsed} ms (cap ${DEFAULT_MAX_BYTES_PER_POLL})`,
    );
    assert.ok(
      // The cap counts UTF-8 bytes of the messages; a status entry may follow.
      bytes <= DEFAULT_MAX_BYTES_PER_POLL + 1024,
      `answer ${bytes} bytes, above the cap`,
    );
    const messages = first.body as WireMessage[];
    assert.ok(messages.length > 0, 'an answer, not a held poll');

    // Follow the answers as a client does: every channel's ids come whole and in order.
    const seen = new Map<string, number[]>(CHANNELS.map((c) => [c, []]));
    let positions = Object.fromEntries(CHANNELS.map((c) => [c, 0]));
    let batch = messages;
    for (let round = 0; batch.length > 0 && round < 200; round++) {
      for (const m of batch) {
        seen.get(m.channel)?.push(m.message_id);
        positions[m.channel] = m.message_id;
      }
      const done = [...seen.values()].every(
        (ids) => ids.length === PER_CHANNEL,
      );
      if (done) break;
      const next = await pollAll(positions).expect(200);
      batch = next.body as WireMessage[];
      positions = { ...positions };
    }
    for (const [channel, ids] of seen) {
      assert.equal(ids.length, PER_CHANNEL, `${channel}: every message`);
      for (let i = 1; i < ids.length; i++)
        assert.equal(ids[i], ids[i - 1]! + 1, `${channel}: no gap`);
    }
  });

  it('four such polls at once do not make the server report an outage', async () => {
    const all = Object.fromEntries(CHANNELS.map((c) => [c, 0]));
    const started = Date.now();
    const answers = await Promise.all([
      pollAll(all),
      pollAll(all),
      pollAll(all),
      pollAll(all),
      request(app).get('/healthz'),
    ]);
    console.log(
      `# 4 concurrent full polls + /healthz: statuses ${answers.map((a) => a.status).join(',')} in ${Date.now() - started} ms`,
    );
    for (const answer of answers) assert.equal(answer.status, 200, answer.text);
  });
});

describe('abuse: anonymous reads of made-up channel names', () => {
  const prefix = randomKeyPrefix();
  const admin = connectTestRedis();
  let app: PresenceApp;

  before(() => {
    app = createApp(
      testOptions({ redisUrl: REDIS_URL, redisKeyPrefix: prefix }),
    );
    // A prefix whose callback says "no such topic" for everything asked here.
    app.presence.registerPrefix('topic', () => null);
  });

  after(async () => {
    await app.presence.close();
    await deleteKeys(admin, `${prefix}*`);
    await admin.quit();
  });

  it('leave nothing in Redis, however many names are asked for', async () => {
    const before = await redisFootprint(admin, prefix);
    for (let i = 0; i < 40; i++) {
      const names = Array.from(
        { length: 50 },
        (_, j) => `/topic/${i}-${j}-${Math.random().toString(36).slice(2)}`,
      );
      await request(app)
        .get(
          `/presence/get?${names.map((n) => `channels[]=${encodeURIComponent(n)}`).join('&')}`,
        )
        .expect(200);
      await request(app)
        .post('/message-bus/anon/poll?dlp=t')
        .set('Content-Type', 'application/json')
        .send(Object.fromEntries(names.map((n) => [`/presence${n}`, -1])))
        .expect(200);
    }
    const after = await redisFootprint(admin, prefix);
    console.log(
      `# 4,000 anonymous lookups of made-up names: Redis ${before.keys} → ${after.keys} keys, ${before.bytes} → ${after.bytes} bytes`,
    );
    assert.equal(after.keys, before.keys);
  });
});

describe('abuse: one anonymous client holding polls of made-up channels', () => {
  const prefix = randomKeyPrefix();
  const admin = connectTestRedis();
  let app: PresenceApp;
  let server: http.Server;
  let origin: string;

  before(async () => {
    app = createApp(
      testOptions({ redisUrl: REDIS_URL, redisKeyPrefix: prefix }),
    );
    server = http.createServer(app);
    await new Promise<void>((resolve) =>
      server.listen(0, '127.0.0.1', resolve),
    );
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await app.presence.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await deleteKeys(admin, `${prefix}*`);
    await admin.quit();
  });

  it(`follows at most ${DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER} channels (Redis subscriptions) for it; its other polls are answered at once`, async () => {
    const POLLS = 10;
    const PER_POLL = 200; // the most one poll may name
    const polls = Array.from({ length: POLLS }, (_, i) =>
      openPoll(origin, {
        clientId: `attacker-${i}`,
        body: Object.fromEntries(
          Array.from({ length: PER_POLL }, (_, j) => [
            `/made-up/${i}-${j}`,
            null,
          ]),
        ),
      }),
    );
    const held = DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER / PER_POLL;
    await until(
      () => polls.filter((open) => open.ended()).length === POLLS - held,
      'the polls past the cap are answered',
      10_000,
    );
    await until(
      () => app.presence.stats().listeners === held * PER_POLL,
      'the others are held',
      10_000,
    );
    const subscribed = (await admin.call(
      'PUBSUB',
      'SHARDCHANNELS',
      `${prefix}*`,
    )) as string[];
    console.log(
      `# ${POLLS} held polls × ${PER_POLL} made-up channels from one address: ${app.presence.stats().heldPolls} held, ` +
        `${subscribed.length} Redis shard subscriptions (${POLLS * PER_POLL} without the cap)`,
    );
    assert.equal(app.presence.stats().heldPolls, held);
    assert.ok(subscribed.length <= DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER);
    for (const open of polls) open.abort();
  });
});

describe('abuse: a signed-in user entering and leaving fresh names', () => {
  const prefix = randomKeyPrefix();
  const admin = connectTestRedis();
  let app: PresenceApp;
  let skew = 0; // the server's clock may run ahead, to let the sweeper find what is due

  before(() => {
    app = createApp(
      testOptions({
        redisUrl: REDIS_URL,
        redisKeyPrefix: prefix,
        rateLimit: false,
        clock: () => Date.now() + skew,
      }),
    );
    // A prefix that accepts any suffix: the worst case for storage.
    app.presence.registerPrefix('any', () => ({ public: true }));
  });

  after(async () => {
    await app.presence.close();
    await deleteKeys(admin, `${prefix}*`);
    await admin.quit();
  });

  it(`leaves what it churned for ${DEFAULT_EMPTY_CHANNEL_TTL_MS / 60_000} minutes, not days`, async () => {
    const ROUNDS = 10;
    for (let round = 0; round < ROUNDS; round++) {
      const names = Array.from({ length: 50 }, (_, i) => `/any/${round}-${i}`);
      for (const key of ['present_channels', 'leave_channels']) {
        await request(app)
          .post('/presence/update')
          .set(SAME_SITE_HEADERS)
          .set('X-Test-User', String(allowedUser.id))
          .send({ client_id: 'churn', [key]: names })
          .expect(200);
      }
    }
    // The sweeper's next pass (due one channel timeout later) drops their sweep-index entries.
    skew += 61_000;
    await app.presence.sweep();
    // The churning user's profile is one key per user, not per channel: it goes within PROFILE_TTL_MS.
    const profileTtl = await admin.pttl(
      `${prefix}{user|${allowedUser.id}}|profile`,
    );
    assert.ok(
      profileTtl > 0 && profileTtl <= PROFILE_TTL_MS,
      `profile PTTL ${profileTtl}`,
    );
    // The deployment's counters (one key, whatever was churned) stay, as they should.
    const left = await redisFootprint(
      admin,
      prefix,
      /^(\{user\|\d+\}\|profile|counts)$/,
    );
    console.log(
      `# ${ROUNDS * 50} channels entered and left: ${left.keys} keys, ${left.bytes} bytes ` +
        `(${Math.round(left.bytes / (ROUNDS * 50))} per channel), all gone within ${Math.round(left.maxTtlMs / 1000)} s ` +
        `(before: backlogs 7 days, channel info 24 h)`,
    );
    assert.deepEqual(left.withoutTtl, [], 'every key left expires');
    assert.ok(
      left.maxTtlMs <= DEFAULT_EMPTY_CHANNEL_TTL_MS,
      `every key left expires within ${DEFAULT_EMPTY_CHANNEL_TTL_MS} ms (longest: ${left.maxTtlMs})`,
    );
  });
});
