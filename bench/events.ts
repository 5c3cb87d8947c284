/**
 * events: what join/leave events cost (issue 18, item 6).
 *
 * 1. Enter of a new user through RedisStore at c50, with events off (nobody consumes them) and on (this
 *    process announced itself as a consumer: each enter also indexes its channel for delivery and
 *    records two events in the script), in interleaved rounds on the same connection: the ratio on/off.
 *    Both stores have a subscriber on the bus channels they publish on, as a server with held polls does.
 * 2. Delivery: another store produces 1,000 events per second (enters and leaves of distinct users over
 *    200 channels) while one EventDispatcher with the webhook sink delivers them to an HTTP receiver on
 *    loopback (in this process, so it competes for the same CPU): events received per second and the
 *    delay from each change to its receipt.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { presenceBusChannel } from '../server/src/core/bus-messages.js';
import type { PublishRules } from '../server/src/core/store.js';
import { EventDispatcher } from '../server/src/events/dispatcher.js';
import {
  createWebhookSink,
  type WebhookBody,
} from '../server/src/events/webhooks.js';
import { silentLogger } from '../server/src/http/logger.js';
import { RedisStore } from '../server/src/store/redis-store.js';
import { runConcurrent, type LoadResult } from './lib/load.js';
import { benchPrefix, connectRedis, deletePrefix } from './lib/redis.js';
import { fmt, median, nowMs, percentile, ratio } from './lib/stats.js';
import type { Bench, BenchResult } from './lib/types.js';
import { benchUserById } from './lib/users.js';

const RULES: PublishRules = { countOnly: false, audience: {} };
const SECRET = 'bench-events-secret-0123456789';

const bench: Bench = {
  name: 'events',
  description:
    'enter with join/leave events on vs off (same run), and webhook delivery at 1,000 events/s',
  async run(context): Promise<BenchResult> {
    const sizes = context.smoke
      ? { rounds: 1, total: 300, rate: 200, seconds: 1 }
      : { rounds: 5, total: 10_000, rate: 1000, seconds: 15 };
    const redis = await connectRedis(context.redisUrl);
    const prefixes = {
      off: benchPrefix('events-off'),
      on: benchPrefix('events-on'),
      delivery: benchPrefix('events-delivery'),
    };
    const stores = {
      off: new RedisStore(redis, { keyPrefix: prefixes.off }),
      on: new RedisStore(redis, { keyPrefix: prefixes.on }),
    };
    await stores.on.events.announceConsumer(Date.now(), 600_000);
    if (!stores.on.events.recording || stores.off.events.recording)
      throw new Error('events must be recorded by one store only');
    let nextUser = 1;
    let delivered = 0;
    const results: Record<'off' | 'on', LoadResult[]> = { off: [], on: [] };
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = JSON.parse(
          Buffer.concat(chunks).toString(),
        ) as WebhookBody;
        const at = Date.now();
        for (const event of body.events) delays.push(at - event.at);
        res.end();
      });
    });
    const delays: number[] = [];
    await new Promise<void>((resolve) =>
      receiver.listen(0, '127.0.0.1', resolve),
    );
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    let deliveryFigures: {
      produced: number;
      received: number;
      perSecond: number;
      p50: number;
      p99: number;
      max: number;
    };

    try {
      const enter = async (
        kind: 'off' | 'on',
        round: string,
        total: number,
      ): Promise<LoadResult> => {
        const channels = Array.from(
          { length: 50 },
          (_, w) => `/bench/${round}-${w}`,
        );
        const unsubscribe = await stores[kind].subscribe(
          channels.map(presenceBusChannel),
          () => void (delivered += 1),
        );
        const result = await runConcurrent(
          (_i, w) =>
            stores[kind].present(
              channels[w]!,
              benchUserById(nextUser++),
              'c1',
              60_000,
              RULES,
              Date.now(),
            ),
          { total, concurrency: 50, maxMs: 30_000 },
        );
        await unsubscribe();
        return result;
      };
      context.log('warm-up');
      await enter('off', 'warm-off', 500);
      await enter('on', 'warm-on', 500);
      for (let round = 0; round < sizes.rounds; round++) {
        context.log(`enter round ${round + 1}/${sizes.rounds}`);
        // Alternating which goes first, so a drift of the machine within a round favours neither.
        const order: ('off' | 'on')[] =
          round % 2 ? ['on', 'off'] : ['off', 'on'];
        for (const kind of order)
          results[kind].push(
            await enter(kind, `r${round}-${kind}`, sizes.total),
          );
      }
      if (delivered === 0)
        throw new Error('no change message reached the subscriber');

      context.log(`delivery: ${sizes.rate} events/s for ${sizes.seconds} s`);
      const producerRedis = await connectRedis(context.redisUrl);
      const producer = new RedisStore(producerRedis, {
        keyPrefix: prefixes.delivery,
      });
      const consumerRedis = await connectRedis(context.redisUrl);
      const consumer = new RedisStore(consumerRedis, {
        keyPrefix: prefixes.delivery,
      });
      const dispatcher = new EventDispatcher({
        log: consumer.events,
        clock: Date.now,
        logger: silentLogger,
        sink: createWebhookSink(
          { urls: [url], secret: SECRET },
          { clock: Date.now, logger: silentLogger },
        ),
      });
      dispatcher.start();
      await producer.events.refreshRecording(Date.now());
      if (!producer.events.recording)
        throw new Error('the producer does not record events');
      // Each operation is one event: users 1..N enter 200 channels that already hold a user (so no
      // occupied/vacated), then leave again.
      const channels = Array.from({ length: 200 }, (_, i) => `/deliver/${i}`);
      for (const [i, channel] of channels.entries())
        await producer.present(
          channel,
          benchUserById(1_000_000 + i),
          'anchor',
          600_000,
          RULES,
          Date.now(),
        );
      const anchors = channels.length * 2; // occupied + added each
      let produced = 0;
      const started = nowMs();
      const total = sizes.rate * sizes.seconds;
      const tickMs = 10;
      const perTick = sizes.rate / (1000 / tickMs);
      const inFlight: Promise<unknown>[] = [];
      for (let tick = 0; produced < total; tick++) {
        const due = Math.min(total, Math.round((tick + 1) * perTick));
        for (; produced < due; produced++) {
          const n = produced;
          const user = 2_000_000 + Math.floor(n / 2);
          const channel = channels[Math.floor(n / 2) % channels.length]!;
          inFlight.push(
            n % 2 === 0
              ? producer.present(
                  channel,
                  benchUserById(user),
                  'c',
                  600_000,
                  RULES,
                  Date.now(),
                )
              : producer.leave(channel, user, 'c', RULES, Date.now()),
          );
        }
        const wait = started + (tick + 1) * tickMs - nowMs();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (nowMs() - started > sizes.seconds * 4000)
          throw new Error('the producer fell behind');
      }
      await Promise.all(inFlight);
      const produceMs = nowMs() - started;
      const expected = produced + anchors;
      const deadline = nowMs() + 60_000;
      while (delays.length < expected && nowMs() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      const receivedMs = nowMs() - started;
      await dispatcher.stop();
      await Promise.all([producer.close(), consumer.close()]);
      producerRedis.disconnect();
      consumerRedis.disconnect();
      if (delays.length < expected)
        throw new Error(
          `only ${delays.length} of ${expected} events reached the receiver`,
        );
      const steady = delays.slice(anchors);
      deliveryFigures = {
        produced: produced / (produceMs / 1000),
        received: delays.length,
        perSecond: produced / (receivedMs / 1000),
        p50: percentile(steady, 50),
        p99: percentile(steady, 99),
        max: percentile(steady, 100),
      };
    } finally {
      receiver.close();
      await Promise.all([stores.off.close(), stores.on.close()]);
      for (const prefix of Object.values(prefixes))
        await deletePrefix(redis, prefix);
      redis.disconnect();
    }

    const perRound = results.on.map((on, i) =>
      ratio(on.opsPerSec, results.off[i]!.opsPerSec),
    );
    const enterRatio = median(perRound);
    const med = (kind: 'off' | 'on', field: keyof LoadResult): number =>
      median(results[kind].map((r) => r[field]));
    const d = deliveryFigures;
    return {
      tables: [
        {
          title: 'enter of a new user, c50, one connection (medians of rounds)',
          columns: ['events', 'ops/s', 'p50 ms', 'p99 ms', '× off'],
          rows: [
            [
              'off (no consumer)',
              med('off', 'opsPerSec'),
              med('off', 'p50Ms'),
              med('off', 'p99Ms'),
              '1×',
            ],
            [
              'on (recorded + indexed)',
              med('on', 'opsPerSec'),
              med('on', 'p50Ms'),
              med('on', 'p99Ms'),
              `${fmt(enterRatio)}×`,
            ],
          ],
        },
        {
          title: `webhook delivery: ${sizes.rate} events/s for ${sizes.seconds} s, one dispatcher, receiver on loopback`,
          columns: [
            'produced/s',
            'delivered/s',
            'events',
            'delay p50 ms',
            'delay p99 ms',
            'delay max ms',
          ],
          rows: [[d.produced, d.perSecond, d.received, d.p50, d.p99, d.max]],
        },
      ],
      targets: [
        {
          what: 'enter with events on vs off (issue 18)',
          target: '≥ 0.8×',
          measured: `${fmt(enterRatio)}× (per round: ${perRound.map(fmt).join(', ')})`,
          met: context.smoke ? null : enterRatio >= 0.8,
        },
        {
          what: `one process keeps up with ${sizes.rate} events/s (issue 18)`,
          target: `delivered ≥ 0.95 × produced, delay p99 < 2 s`,
          measured: `${fmt(d.perSecond)}/s of ${fmt(d.produced)}/s, p99 ${fmt(d.p99)} ms`,
          met: context.smoke
            ? null
            : d.perSecond >= 0.95 * d.produced && d.p99 < 2000,
        },
      ],
      notes: [
        'Events off is the code path every deployment without hooks or webhooks runs: the store checks one flag per call and records nothing.',
        'Delivery delay is from the change (its `at`) to the receiver reading the POST; the dispatcher polls its shards every 250 ms.',
      ],
      figures: {
        'enter off ops/s': med('off', 'opsPerSec'),
        'enter on ops/s': med('on', 'opsPerSec'),
        'enter on/off': enterRatio,
        'delivered events/s': d.perSecond,
        'delivery delay p99 ms': Math.max(d.p99, 0.001),
      },
    };
  },
};

export default bench;
