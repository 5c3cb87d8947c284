import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';

import { MemoryStore } from '../src/core/memory-store.js';
import type { EventMetrics } from '../src/core/metrics-types.js';
import type {
  PresenceEvent,
  PresenceStore,
  PublishRules,
} from '../src/core/store.js';
import type { PresenceUser } from '../src/core/types.js';
import { EventDispatcher, type EventSink } from '../src/events/dispatcher.js';
import {
  createWebhookSink,
  verifyWebhookSignature,
  WEBHOOK_SIGNATURE_HEADER,
  type WebhookBody,
} from '../src/events/webhooks.js';
import type { Logger } from '../src/http/logger.js';
import { createPresenceServer } from '../src/presence-server.js';
import { RedisStore } from '../src/store/redis-store.js';
import {
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
} from './support/redis-fixture.js';
import { ManualTimers, settle } from './support/manual-timers.js';

const T = 1_764_000_000_000;
const PUBLIC: PublishRules = { countOnly: false, audience: {} };
const SECRET = 'webhook-test-secret-0123456789';

function user(id: number): PresenceUser {
  return { id, username: `u${id}`, name: null, avatar_template: '' };
}

/** A logger that keeps what it is told. */
function capturingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
    };
  const logger: Logger & { lines: string[] } = {
    lines,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
  };
  return logger;
}

function countingMetrics(): EventMetrics & { counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  const add = (name: string, n = 1): void => {
    counts[name] = (counts[name] ?? 0) + n;
  };
  return {
    counts,
    webhookDelivered: (n) => add('delivered', n),
    webhookRetried: () => add('retried'),
    webhookDropped: (n) => add('dropped', n),
    hookFailed: (kind) => add(`hook_${kind}`),
  };
}

const short = (e: PresenceEvent): string =>
  `${e.name}:${e.userId}@${e.channel}`;

/** A dispatcher on `store` driven by hand-moved timers whose clock starts at T. */
function dispatcherOn(
  store: PresenceStore,
  timers: ManualTimers,
  extra: Partial<ConstructorParameters<typeof EventDispatcher>[0]> = {},
) {
  const logger = capturingLogger();
  const metrics = countingMetrics();
  const dispatcher = new EventDispatcher({
    log: store.events,
    clock: () => T + timers.now,
    logger,
    metrics,
    timers,
    ...extra,
  });
  return { dispatcher, logger, metrics };
}

describe('join/leave hooks', () => {
  it('calls each hook once per event, in channel order, sweeper leaves included', async () => {
    const store = new MemoryStore();
    const timers = new ManualTimers();
    const now = () => T + timers.now;
    const { dispatcher } = dispatcherOn(store, timers);
    const seen: PresenceEvent[] = [];
    for (const name of [
      'member_added',
      'member_removed',
      'channel_occupied',
      'channel_vacated',
    ] as const)
      dispatcher.on(name, (event) => void seen.push(event));
    dispatcher.start();
    assert.equal(
      store.events.recording,
      true,
      'records from the first hook on',
    );

    await store.present('/a', user(1), 't1', 1000, PUBLIC, now());
    await store.present('/a', user(2), 't1', 60_000, PUBLIC, now());
    await store.leave('/a', 2, 't1', PUBLIC, now());
    await timers.advance(250);
    await store.sweep(T + 5000);
    await timers.advance(5000);
    assert.deepEqual(seen.map(short), [
      'channel_occupied:1@/a',
      'member_added:1@/a',
      'member_added:2@/a',
      'member_removed:2@/a',
      'member_removed:1@/a',
      'channel_vacated:1@/a',
    ]);
    assert.deepEqual(
      seen.map((e) => e.at),
      [T, T, T, T, T + 5000, T + 5000],
    );
    assert.ok(Object.isFrozen(seen[0]));
    await timers.advance(120_000);
    assert.equal(seen.length, 6, 'never called twice');
    await dispatcher.stop();
    await store.close();
  });

  it('contains a hook that throws or hangs: logged, counted, and the next events still run', async () => {
    const store = new MemoryStore();
    const timers = new ManualTimers();
    const { dispatcher, logger, metrics } = dispatcherOn(store, timers, {
      hookTimeoutMs: 1000,
    });
    const seen: string[] = [];
    dispatcher.on('member_added', (event) => {
      if (event.userId === 1) throw new Error('boom');
      if (event.userId === 2) return new Promise<void>(() => {}); // never settles
      seen.push(short(event));
    });
    dispatcher.start();
    for (const id of [1, 2, 3])
      await store.present('/a', user(id), 't', 60_000, PUBLIC, T);
    await timers.advance(250);
    await timers.advance(1000);
    assert.deepEqual(seen, ['member_added:3@/a']);
    assert.equal(metrics.counts['hook_error'], 1);
    assert.equal(metrics.counts['hook_timeout'], 1);
    assert.ok(
      logger.lines.some((l) => l.includes('hook failed') && l.includes('boom')),
    );
    assert.ok(logger.lines.some((l) => l.includes('hook timed out')));
    // Presence itself was never affected.
    assert.equal((await store.state('/a', false, T)).count, 3);
    await dispatcher.stop();
    await store.close();
  });

  it('names the fix for a bad event name or handler', () => {
    const { dispatcher } = dispatcherOn(new MemoryStore(), new ManualTimers());
    assert.throws(
      () => dispatcher.on('joined' as never, () => {}),
      /unknown presence event "joined": use one of member_added, member_removed, channel_occupied, channel_vacated/,
    );
    assert.throws(
      () => dispatcher.on('member_added', 'x' as never),
      /the handler of member_added must be a function/,
    );
  });

  it('a consumer that dies mid-delivery loses nothing: the next holder of the lease delivers the same ids', async () => {
    const store = new MemoryStore();
    // Each process has its own timers; the first one's stop moving when it "dies".
    const timersA = new ManualTimers();
    const timersB = new ManualTimers();
    const stuck: PresenceEvent[] = [];
    // A sink that never finishes: the process dies with the batch in flight, never acknowledged.
    const dying: EventSink = {
      deliver: (events) => {
        stuck.push(...events);
        return new Promise(() => {});
      },
    };
    const first = dispatcherOn(store, timersA, { sink: dying, leaseMs: 3000 });
    first.dispatcher.start();
    await store.present('/a', user(1), 't', 60_000, PUBLIC, T);
    await timersA.advance(250); // reads and hands over the batch, then is killed: no more rounds

    const delivered: PresenceEvent[] = [];
    const second = dispatcherOn(store, timersB, {
      sink: {
        deliver: (events) => {
          delivered.push(...events);
          return Promise.resolve();
        },
      },
      leaseMs: 3000,
    });
    second.dispatcher.start();
    await timersB.advance(2500);
    assert.equal(delivered.length, 0, 'the dead process still holds the lease');
    await timersB.advance(1000);
    assert.equal(stuck.length, 2);
    assert.deepEqual(
      delivered.map((e) => e.id),
      stuck.map((e) => e.id),
      'the same events, with the same ids',
    );
    await second.dispatcher.stop();
    await store.close();
  });

  it('stop abandons a batch still being delivered, without acknowledging it', async () => {
    const store = new MemoryStore();
    const timers = new ManualTimers();
    const { dispatcher } = dispatcherOn(store, timers, {
      sink: { deliver: () => new Promise(() => {}) },
    });
    dispatcher.start();
    await store.present('/a', user(1), 't', 60_000, PUBLIC, T);
    await timers.advance(250);
    await dispatcher.stop(); // resolves although the sink never does
    const [pending] = await store.events.readDue(0, T + 1000, 10, 10);
    assert.equal(
      pending?.events.length,
      2,
      'still there for the next consumer',
    );
    await store.close();
  });
});

describe('hooks across processes on Redis', () => {
  const redis = connectTestRedis();
  const prefix = randomKeyPrefix();
  after(async () => {
    await deleteKeys(redis, `${prefix}*`);
    await redis.quit();
  });

  it('a process keeps recording for a minute after the announcement vanished (a Redis restart)', async () => {
    const keyPrefix = randomKeyPrefix();
    const consumer = new RedisStore(redis, { keyPrefix });
    const other = new RedisStore(redis, { keyPrefix });
    await consumer.events.announceConsumer(T, 60_000);
    assert.equal(await other.events.refreshRecording(T), true);
    await redis.del(other.keys.eventConsumers()); // lost with the rest of Redis' memory
    assert.equal(await other.events.refreshRecording(T + 10_000), true);
    assert.equal(await other.events.refreshRecording(T + 59_999), true);
    assert.equal(await other.events.refreshRecording(T + 60_000), false);
    assert.equal(
      consumer.events.recording,
      true,
      'a consumer records regardless',
    );
    await consumer.close();
    await other.close();
    await deleteKeys(redis, `${keyPrefix}*`);
  });

  it('two processes with the same hooks call them once per event in all', async () => {
    const connections = [redis.duplicate(), redis.duplicate()];
    const stores = connections.map(
      (connection) => new RedisStore(connection, { keyPrefix: prefix }),
    );
    const timers = new ManualTimers();
    const calls: string[] = [];
    const dispatchers = stores.map((store, i) => {
      const { dispatcher } = dispatcherOn(store, timers);
      dispatcher.on('member_added', (e) => void calls.push(`${i}:${short(e)}`));
      dispatcher.on(
        'member_removed',
        (e) => void calls.push(`${i}:${short(e)}`),
      );
      dispatcher.start();
      return dispatcher;
    });
    await timers.advance(250);
    for (let id = 1; id <= 20; id++)
      await stores[id % 2]!.present(
        `/c/${id % 5}`,
        user(id),
        't',
        60_000,
        PUBLIC,
        T,
      );
    for (let id = 1; id <= 20; id += 3)
      await stores[(id + 1) % 2]!.leave(`/c/${id % 5}`, id, 't', PUBLIC, T + 1);
    for (let round = 0; round < 8; round++) await timers.advance(250);
    await Promise.all(dispatchers.map((d) => d.runOnce()));
    const events = calls.map((c) => c.slice(2)).sort();
    assert.equal(events.length, 27);
    assert.equal(new Set(events).size, 27, 'no event twice');
    await Promise.all(dispatchers.map((d) => d.stop()));
    await Promise.all(stores.map((s) => s.close()));
    await Promise.all(connections.map((c) => c.quit()));
  });
});

describe('webhooks', () => {
  const events: PresenceEvent[] = [
    {
      id: `${T * 1000 + 1}@/a`,
      name: 'member_added',
      channel: '/a',
      userId: 1,
      at: T,
    },
    {
      id: `${T * 1000 + 2}@/a`,
      name: 'member_removed',
      channel: '/a',
      userId: 1,
      at: T,
    },
  ];

  it('POSTs { time_ms, events } signed with HMAC-SHA256 of the raw body', async () => {
    const received: { body: string; signature: string | undefined }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push({
          body,
          signature: req.headers[
            WEBHOOK_SIGNATURE_HEADER.toLowerCase()
          ] as string,
        });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) =>
      server.listen(0, '127.0.0.1', resolve),
    );
    const { port } = server.address() as AddressInfo;
    const metrics = countingMetrics();
    const sink = createWebhookSink(
      { urls: [`http://127.0.0.1:${port}/hook`], secret: SECRET },
      { clock: () => T + 5, logger: capturingLogger(), metrics },
    );
    await sink.deliver(events, new AbortController().signal);
    server.close();
    assert.equal(received.length, 1);
    const { body, signature } = received[0]!;
    assert.equal(verifyWebhookSignature(SECRET, body, signature), true);
    assert.equal(
      verifyWebhookSignature('another-secret-0123456', body, signature),
      false,
    );
    assert.equal(verifyWebhookSignature(SECRET, `${body} `, signature), false);
    assert.deepEqual(JSON.parse(body) as WebhookBody, {
      time_ms: T + 5,
      events: [
        {
          id: events[0]!.id,
          name: 'member_added',
          channel: '/a',
          user_id: 1,
          at: T,
        },
        {
          id: events[1]!.id,
          name: 'member_removed',
          channel: '/a',
          user_id: 1,
          at: T,
        },
      ],
    });
    assert.equal(metrics.counts['delivered'], 2);
  });

  /** Moves `timers` in 500 ms steps until `work` settles (at most `maxMs`). */
  async function advanceUntil(
    timers: ManualTimers,
    work: Promise<void>,
    maxMs: number,
  ) {
    let settled = false;
    void work.finally(() => (settled = true));
    for (let moved = 0; !settled && moved < maxMs; moved += 500)
      await timers.advance(500);
    await work;
  }

  /** A sink whose fetch answers `statuses` in turn (then 200), on hand-moved timers. */
  function scripted(statuses: (number | 'network')[], options = {}) {
    const timers = new ManualTimers();
    const metrics = countingMetrics();
    const logger = capturingLogger();
    const attempts: number[] = [];
    const delays: number[] = [];
    const recording = {
      setTimeout: (callback: () => void, ms: number) => {
        delays.push(ms);
        return timers.setTimeout(callback, ms);
      },
      clearTimeout: (handle: unknown) => timers.clearTimeout(handle),
    };
    const fetchStub = (() => {
      attempts.push(timers.now);
      const next = statuses.shift() ?? 200;
      if (next === 'network')
        return Promise.reject(new TypeError('fetch failed'));
      return Promise.resolve(new Response('', { status: next }));
    }) as typeof fetch;
    const sink = createWebhookSink(
      {
        urls: ['http://127.0.0.1:9/hook'],
        secret: SECRET,
        fetch: fetchStub,
        ...options,
      },
      { clock: () => T + timers.now, logger, metrics, timers: recording },
    );
    return { sink, timers, metrics, logger, attempts, delays };
  }

  it('retries network errors, 5xx, 408 and 429 with exponential back-off, the first within 30 s', async () => {
    const { sink, timers, metrics, attempts, delays } = scripted([
      'network',
      500,
      503,
      429,
      408,
    ]);
    await advanceUntil(
      timers,
      sink.deliver(events, new AbortController().signal),
      60_000,
    );
    assert.equal(attempts.length, 6);
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000]);
    assert.equal(metrics.counts['retried'], 5);
    assert.equal(metrics.counts['delivered'], 2);
  });

  it('drops (logs and counts) events a receiver refuses with another 4xx, or after the last attempt', async () => {
    const refused = scripted([400]);
    await refused.sink.deliver(events, new AbortController().signal);
    assert.equal(refused.metrics.counts['dropped'], 2);
    assert.ok(
      refused.logger.lines.some(
        (l) => l.includes('dropped') && l.includes('HTTP 400'),
      ),
    );

    const failing = scripted(Array<number>(10).fill(500), { maxAttempts: 3 });
    await advanceUntil(
      failing.timers,
      failing.sink.deliver(events, new AbortController().signal),
      10_000,
    );
    assert.equal(failing.attempts.length, 3);
    assert.deepEqual(failing.delays, [1000, 2000]);
    assert.equal(failing.metrics.counts['dropped'], 2);
    assert.equal(failing.metrics.counts['delivered'], undefined);
  });

  it('rejects bad options with the fix', () => {
    const deps = { clock: () => T, logger: capturingLogger() };
    assert.throws(
      () => createWebhookSink({ urls: ['http://x/'], secret: 'short' }, deps),
      /at least 16 characters/,
    );
    assert.throws(
      () => createWebhookSink({ urls: ['not a url'], secret: SECRET }, deps),
      /is not a URL: give an absolute http\(s\) URL/,
    );
    assert.throws(
      () => createWebhookSink({ urls: ['ftp://x/'], secret: SECRET }, deps),
      /must use http or https/,
    );
    assert.throws(
      () => createWebhookSink({ urls: [], secret: SECRET }, deps),
      /at least one receiver URL/,
    );
    assert.throws(
      () => createPresenceServer({ webhooks: { urls: ['x'], secret: SECRET } }),
      /is not a URL/,
    );
  });
});

describe('presence.on (createPresenceServer)', () => {
  it('delivers the events of the server API to a hook registered by the app', async () => {
    const presence = createPresenceServer({ logger: capturingLogger() });
    presence.registerPrefix('site', () => ({ public: true }));
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      presence.on('member_added', (e) => {
        seen.push(short(e));
        resolve();
      });
    });
    const ann = { ...user(5), groupIds: [] };
    await presence.present(ann, '/site/x', 'tab');
    await Promise.race([
      done,
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error('no event within 5 s')),
          5000,
        ).unref(),
      ),
    ]);
    assert.deepEqual(seen, ['member_added:5@/site/x']);
    await settle();
    await presence.close();
  });
});
