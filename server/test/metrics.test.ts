import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  createApp,
  MemoryStore,
  type CreateAppOptions,
  type PresenceApp,
} from '../src/index.js';
import { openPoll } from './support/bus-http.js';
import { flakyStore } from './support/flaky-store.js';
import {
  fakeClock,
  SAME_SITE_HEADERS,
  testOptions,
  untilPollHeld,
} from './support/http-fixtures.js';
import { startCli, type RunningServer } from './support/http-spawn.js';
import {
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
  REDIS_URL,
} from './support/redis-fixture.js';

/** `GET /metrics` (`metrics: true`, CLI `--metrics`): the figures after a scripted scenario. */

/** One sample of the text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses `name{a="b",…} value` lines (comments skipped); enough for what prom-client prints. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(
      /(\w+)="((?:[^"\\]|\\.)*)"/g,
    ))
      labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** A scrape, queried by name and a subset of labels. */
class Scrape {
  readonly samples: Sample[];
  constructor(readonly text: string) {
    this.samples = parseExposition(text);
  }

  /** The value of the one sample named `name` with `labels` (a subset of its labels). */
  value(name: string, labels: Record<string, string> = {}): number {
    const found = this.samples.filter(
      (sample) =>
        sample.name === name &&
        Object.entries(labels).every(([k, v]) => sample.labels[k] === v),
    );
    assert.equal(
      found.length,
      1,
      `${name}${JSON.stringify(labels)}: ${found.length} samples`,
    );
    return found[0]!.value;
  }

  /** The sum of every sample named `name`. */
  sum(name: string): number {
    return this.samples
      .filter((sample) => sample.name === name)
      .reduce((total, sample) => total + sample.value, 0);
  }
}

/** The standalone app listening on 127.0.0.1:<any port>, driven with fetch. */
interface Running {
  app: PresenceApp;
  origin: string;
  close(): Promise<void>;
}

async function listen(options: CreateAppOptions): Promise<Running> {
  const app = createApp(testOptions(options));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    app,
    origin: `http://127.0.0.1:${port}`,
    async close() {
      await app.presence.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function scrape(origin: string): Promise<Scrape> {
  const res = await fetch(`${origin}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(
    res.headers.get('content-type'),
    'text/plain; version=0.0.4; charset=utf-8',
  );
  return new Scrape(await res.text());
}

async function update(
  origin: string,
  userId: number,
  body: Record<string, unknown>,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${origin}/presence/update`, {
    method: 'POST',
    headers: {
      ...SAME_SITE_HEADERS,
      'Content-Type': 'application/json',
      'X-Test-User': String(userId),
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/**
 * The issue's scenario, on whichever store `options` picks: 2 users in 2 channels (plus a full one and an
 * unknown one), a GET, a long poll held then answered by a message, a leave, a rate-limited update, and a
 * sweep of the expired clients of user 1 after the fake clock moved past their timeout.
 */
async function runScenario(options: CreateAppOptions): Promise<void> {
  const clock = fakeClock();
  const server = await listen({
    ...options,
    metrics: true,
    clock: clock.now,
    rateLimit: { limit: 2, windowMs: 10_000 },
  });
  const { origin, app } = server;
  app.presence.registerPrefix('room', () => ({ public: true, timeout: 60 }));
  app.presence.registerPrefix('small', () => ({
    public: true,
    timeout: 60,
    maxUsers: 1,
  }));
  try {
    const before = await scrape(origin);
    assert.equal(before.value('ember_presence_clients'), 0);
    assert.equal(before.value('ember_presence_channels'), 0);
    assert.equal(
      before.value('ember_presence_updates_total', { result: 'ok' }),
      0,
    );

    // User 1 enters two rooms and the one-seat channel.
    assert.deepEqual(
      await update(origin, 1, {
        client_id: 'c1',
        present_channels: ['/room/a', '/room/b', '/small/one'],
      }),
      {
        status: 200,
        body: { '/room/a': true, '/room/b': true, '/small/one': true },
      },
    );

    // A GET of /room/a, then a long poll on its bus channel from the id it returned.
    const got = await fetch(
      `${origin}/presence/get?channels[]=${encodeURIComponent('/room/a')}`,
    );
    assert.equal(got.status, 200);
    const state = (
      (await got.json()) as Record<string, { last_message_id: number }>
    )['/room/a']!;
    const poll = openPoll(origin, {
      clientId: 'watcher',
      body: { '/presence/room/a': state.last_message_id, __seq: 1 },
      dontChunk: true,
    });
    assert.ok(await untilPollHeld(app.presence), 'the poll is held');
    const holding = await scrape(origin);
    assert.equal(
      holding.value('ember_presence_held_polls', { mode: 'long_poll' }),
      1,
    );
    assert.equal(holding.value('ember_presence_clients'), 3);
    assert.equal(holding.value('ember_presence_channels'), 3);

    // User 2 enters both rooms (answering the poll), is refused by the full channel and an unknown one.
    const second = await update(origin, 2, {
      client_id: 'c2',
      present_channels: ['/room/a', '/room/b', '/small/one', '/nope/x'],
    });
    assert.equal(second.status, 200);
    assert.deepEqual(second.body, {
      '/room/a': true,
      '/room/b': true,
      '/small/one': false,
      '/nope/x': false,
      _reasons: { '/small/one': 'full' },
    });
    const answered = await poll.response;
    assert.equal(answered.status, 200);
    assert.match(await poll.body, /entering_users/);

    // User 2 leaves /room/b, then goes past the limit of 2 updates per 10 s.
    assert.equal(
      (
        await update(origin, 2, {
          client_id: 'c2',
          leave_channels: ['/room/b'],
        })
      ).status,
      200,
    );
    assert.equal(
      (await update(origin, 2, { client_id: 'c2', present_channels: [] }))
        .status,
      429,
    );

    // 61 s later user 2 heartbeats (a new rate window); user 1's three clients expired 1 s ago.
    clock.advance(61_000);
    assert.equal(
      (
        await update(origin, 2, {
          client_id: 'c2',
          present_channels: ['/room/a'],
        })
      ).status,
      200,
    );
    const swept = await app.presence.sweep();
    assert.equal(swept.expiredClients, 3);

    const after = await scrape(origin);
    const value = after.value.bind(after);
    // Gauges: read from the store at scrape time.
    assert.equal(value('ember_presence_clients'), 1);
    assert.equal(value('ember_presence_channels'), 1);
    assert.equal(value('ember_presence_held_polls', { mode: 'long_poll' }), 0);
    assert.equal(value('ember_presence_held_polls', { mode: 'stream' }), 0);
    // Requests.
    assert.equal(value('ember_presence_updates_total', { result: 'ok' }), 4);
    assert.equal(
      value('ember_presence_updates_total', { result: 'rate_limited' }),
      1,
    );
    assert.equal(
      value('ember_presence_update_channels_total', { result: 'accepted' }),
      6,
    );
    assert.equal(
      value('ember_presence_update_channels_total', { result: 'full' }),
      1,
    );
    assert.equal(
      value('ember_presence_update_channels_total', { result: 'refused' }),
      1,
    );
    assert.equal(value('ember_presence_gets_total', { result: 'ok' }), 1);
    assert.equal(
      value('ember_presence_rate_limited_total', { endpoint: 'update' }),
      1,
    );
    assert.equal(
      value('ember_presence_unavailable_total', { endpoint: 'update' }),
      0,
    );
    assert.equal(
      value('ember_presence_poll_answers_total', {
        mode: 'long_poll',
        result: 'messages',
      }),
      1,
    );
    // Messages: 5 enters, 1 leave, 3 sweep leaves (one per channel user 1 was alone in or shared).
    assert.equal(
      value('ember_presence_messages_published_total', { source: 'present' }),
      5,
    );
    assert.equal(
      value('ember_presence_messages_published_total', { source: 'leave' }),
      1,
    );
    assert.equal(
      value('ember_presence_messages_published_total', { source: 'sweep' }),
      3,
    );
    // Sweep: one run that removed 3 clients, the oldest 1 s after its expiry.
    assert.equal(value('ember_presence_swept_clients_total'), 3);
    assert.equal(value('ember_presence_sweep_seconds_count'), 1);
    assert.equal(value('ember_presence_sweep_lag_seconds_count'), 1);
    assert.equal(value('ember_presence_sweep_lag_seconds_sum'), 1);
    assert.equal(
      value('ember_presence_sweep_lag_seconds_bucket', { le: '0.5' }),
      0,
    );
    assert.equal(
      value('ember_presence_sweep_lag_seconds_bucket', { le: '1' }),
      1,
    );
    // Store latency: 7 presents (5 enters, the refused full one, the heartbeat), all timed.
    assert.equal(
      value('ember_presence_store_seconds_count', { operation: 'present' }),
      7,
    );
    assert.equal(
      value('ember_presence_store_seconds_count', { operation: 'sweep' }),
      1,
    );
    assert.ok(
      value('ember_presence_store_seconds_sum', { operation: 'present' }) > 0,
    );
    assert.equal(value('ember_presence_counts_failures_total'), 0);
    // Default process metrics come along.
    assert.ok(value('process_cpu_user_seconds_total') > 0);
    // Hook and webhook figures exist from the start.
    assert.equal(
      value('ember_presence_webhook_events_total', { result: 'delivered' }),
      0,
    );
    assert.equal(
      value('ember_presence_hook_failures_total', { kind: 'timeout' }),
      0,
    );
  } finally {
    await server.close();
  }
}

describe('GET /metrics', { timeout: 30_000 }, () => {
  it('counts a scripted scenario on the MemoryStore', async () => {
    await runScenario({ store: new MemoryStore() });
  });

  it('counts the same scenario on Redis (its own key prefix)', async () => {
    const redisKeyPrefix = randomKeyPrefix();
    const redis = connectTestRedis();
    try {
      await runScenario({ redisUrl: REDIS_URL, redisKeyPrefix });
    } finally {
      await deleteKeys(redis, `${redisKeyPrefix}*`);
      await redis.quit();
    }
  });

  it('counts a streamed poll: its chunks with messages, its end, the held stream', async () => {
    const server = await listen({ metrics: true });
    const { origin, app } = server;
    app.presence.registerPrefix('room', () => ({ public: true }));
    try {
      const stream = openPoll(origin, {
        clientId: 'streamer',
        body: { '/presence/room/a': 0, __seq: 1 },
      });
      assert.deepEqual(await stream.nextChunk(), []);
      assert.ok(await untilPollHeld(app.presence), 'the stream is held');
      const open = await scrape(origin);
      assert.equal(
        open.value('ember_presence_held_polls', { mode: 'stream' }),
        1,
      );
      await update(origin, 1, {
        client_id: 'c1',
        present_channels: ['/room/a'],
      });
      assert.equal((await stream.nextChunk()).length, 1);
      await app.presence.drain(); // ends the stream with its final `[]`
      await stream.body;
      const ended = await scrape(origin);
      const answers = (result: string) =>
        ended.value('ember_presence_poll_answers_total', {
          mode: 'stream',
          result,
        });
      assert.equal(answers('messages'), 1);
      assert.equal(answers('empty'), 1);
      assert.equal(answers('error'), 0);
      assert.equal(
        ended.value('ember_presence_held_polls', { mode: 'stream' }),
        0,
      );
    } finally {
      await server.close();
    }
  });

  it('answers only GET and HEAD', async () => {
    const server = await listen({ metrics: true });
    try {
      const head = await fetch(`${server.origin}/metrics`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
      const post = await fetch(`${server.origin}/metrics`, { method: 'POST' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
    } finally {
      await server.close();
    }
  });

  it('counts 503s and keeps the gauges when the store is down', async () => {
    const { store, setDown } = flakyStore();
    const server = await listen({ store, metrics: true });
    server.app.presence.registerPrefix('room', () => ({ public: true }));
    try {
      await update(server.origin, 1, {
        client_id: 'c1',
        present_channels: ['/room/a'],
      });
      assert.equal(
        (await scrape(server.origin)).value('ember_presence_clients'),
        1,
      );
      setDown(true);
      const get = await fetch(
        `${server.origin}/presence/get?channels[]=${encodeURIComponent('/room/a')}`,
      );
      assert.equal(get.status, 503);
      const health = await fetch(`${server.origin}/healthz`);
      assert.equal(health.status, 503);
      const down = await scrape(server.origin);
      assert.equal(down.value('ember_presence_clients'), 1, 'last value kept');
      assert.equal(down.value('ember_presence_counts_failures_total'), 1);
      assert.equal(
        down.value('ember_presence_unavailable_total', { endpoint: 'get' }),
        1,
      );
      assert.equal(
        down.value('ember_presence_unavailable_total', { endpoint: 'health' }),
        1,
      );
      assert.equal(
        down.value('ember_presence_gets_total', { result: 'unavailable' }),
        1,
      );
      // The GET failed on its first store call (the cached config), the health check on its ping.
      assert.ok(down.sum('ember_presence_store_errors_total') >= 2);
      assert.equal(
        down.value('ember_presence_store_errors_total', { operation: 'ping' }),
        1,
      );
    } finally {
      setDown(false);
      await server.close();
      await store.close();
    }
  });

  it('gives the hook/webhook figures and counter() to other modules', async () => {
    const server = await listen({ metrics: true });
    try {
      const metrics = server.app.presence.metrics!;
      metrics.webhookDelivered(3);
      metrics.webhookDelivered(2);
      metrics.webhookRetried();
      metrics.webhookDropped(4);
      metrics.hookFailed('timeout');
      metrics
        .counter('ember_presence_test_widgets_total', 'Test.', ['kind'])
        .inc({ kind: 'x' });
      // The same counter again, not a duplicate registration.
      metrics
        .counter('ember_presence_test_widgets_total', 'Test.', ['kind'])
        .inc({ kind: 'x' });
      assert.throws(() => metrics.counter('widgets_total', 'No prefix.'));
      const scraped = await scrape(server.origin);
      const value = scraped.value.bind(scraped);
      assert.equal(
        value('ember_presence_webhook_events_total', { result: 'delivered' }),
        5,
      );
      assert.equal(
        value('ember_presence_webhook_events_total', { result: 'dropped' }),
        4,
      );
      assert.equal(value('ember_presence_webhook_deliveries_total'), 2);
      assert.equal(value('ember_presence_webhook_retries_total'), 1);
      assert.equal(
        value('ember_presence_hook_failures_total', { kind: 'timeout' }),
        1,
      );
      assert.equal(
        value('ember_presence_hook_failures_total', { kind: 'error' }),
        0,
      );
      assert.equal(
        value('ember_presence_test_widgets_total', { kind: 'x' }),
        2,
      );
    } finally {
      await server.close();
    }
  });

  it('two servers in one process keep separate figures', async () => {
    const one = await listen({ metrics: true });
    const two = await listen({ metrics: true });
    try {
      await fetch(`${one.origin}/presence/get?channels[]=%2Fx`);
      assert.equal(
        (await scrape(one.origin)).value('ember_presence_gets_total', {
          result: 'ok',
        }),
        1,
      );
      assert.equal(
        (await scrape(two.origin)).value('ember_presence_gets_total', {
          result: 'ok',
        }),
        0,
      );
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('metrics off (the default)', { timeout: 30_000 }, () => {
  it('serves no /metrics (404) and calls the store without a wrapper', async () => {
    const stacks: string[] = [];
    /** Records the call stack of every `state()` to see who called it. */
    class SpyStore extends MemoryStore {
      override state(
        ...args: Parameters<MemoryStore['state']>
      ): ReturnType<MemoryStore['state']> {
        stacks.push(new Error().stack ?? '');
        return super.state(...args);
      }
    }
    const get = (origin: string) =>
      fetch(
        `${origin}/presence/get?channels[]=${encodeURIComponent('/room/a')}`,
      );

    const off = await listen({ store: new SpyStore() });
    off.app.presence.registerPrefix('room', () => ({ public: true }));
    try {
      assert.equal(off.app.presence.metrics, null);
      assert.equal((await fetch(`${off.origin}/metrics`)).status, 404);
      assert.equal((await get(off.origin)).status, 200);
      assert.equal(stacks.length, 1);
      assert.doesNotMatch(stacks[0]!, /instrumentedStoreCall/);
    } finally {
      await off.close();
    }

    // The same probe sees the wrapper when metrics are on, so the check above means something.
    const on = await listen({ store: new SpyStore(), metrics: true });
    on.app.presence.registerPrefix('room', () => ({ public: true }));
    try {
      assert.equal((await get(on.origin)).status, 200);
      assert.match(stacks[1]!, /instrumentedStoreCall/);
    } finally {
      await on.close();
    }
  });
});

describe('ember-presence-server --metrics', { timeout: 30_000 }, () => {
  const running: RunningServer[] = [];
  after(async () => {
    for (const server of running) await server.stop();
  });

  it('serves GET /metrics', async () => {
    const server = await startCli(['--metrics']);
    running.push(server);
    const scraped = await scrape(server.url);
    assert.equal(scraped.value('ember_presence_clients'), 0);
    assert.ok(scraped.value('process_resident_memory_bytes') > 0);
  });
});
