/**
 * big-channel: `GET /presence/get` of channels of 100 / 1,000 / 10,000 / 100,000 present users (full
 * state: time and bytes; count-only state: time and throughput), and one sweep of 10,000 expired clients
 * spread over 100 channels. Baseline in the same run: the count-only GET of the 100-user channel.
 * And the store's full state read of the 100 / 1,000 / 10,000-user channels at 50 concurrent, with and
 * without its in-process users cache (`stateCacheUsers: 0`: what a read right after a change costs),
 * against an ids-only read of the same channel on the same connection (HKEYS of the users hash + HGET of
 * the last message id: what Discourse's read does before it loads its users from its database).
 *
 * And the GET of the largest channel again with `maxUsersShown` (a `/bench/shown-…` channel of as many
 * users, listing {@link BENCH_USERS_SHOWN}): what a huge channel costs a viewer with the limit on.
 *
 * The server is the real `createApp` on a RedisStore in its own process; channels are populated through
 * the store's `present` directly (concurrently), under a random key prefix deleted afterwards.
 */
import http from 'node:http';

import autocannon from 'autocannon';

import type { PublishRules } from '../server/src/core/store.js';
import { RedisStore } from '../server/src/store/redis-store.js';
import { startServer, type ChildServer } from './lib/child.js';
import { BENCH_USERS_SHOWN } from './lib/cli-config.js';
import { runConcurrent } from './lib/load.js';
import { benchPrefix, connectRedis, deletePrefix } from './lib/redis.js';
import { fmt, median, nowMs, ratio } from './lib/stats.js';
import type { Bench, BenchResult, Table } from './lib/types.js';
import { benchUserById } from './lib/users.js';

const FULL: PublishRules = { countOnly: false, audience: {} };
const COUNT_ONLY: PublishRules = { countOnly: true, audience: {} };
const SHOWN: PublishRules = {
  countOnly: false,
  audience: {},
  maxUsersShown: BENCH_USERS_SHOWN,
};
const LONG_TIMEOUT_MS = 30 * 60_000;

/** One GET over a keep-alive agent: ms until the whole body arrived, and its size. */
function get(
  agent: http.Agent,
  port: number,
  path: string,
): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = nowMs();
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => {
        if (res.statusCode !== 200)
          reject(new Error(`GET ${path} answered ${res.statusCode}`));
        else resolve({ ms: nowMs() - started, bytes });
      });
    });
    req.on('error', reject);
    req.setTimeout(30_000, () =>
      req.destroy(new Error(`GET ${path} timed out`)),
    );
  });
}

async function latency(
  agent: http.Agent,
  port: number,
  path: string,
  reps: number,
): Promise<{ ms: number; bytes: number }> {
  const samples: number[] = [];
  let bytes = 0;
  for (let i = 0; i < reps; i++) {
    const r = await get(agent, port, path);
    samples.push(r.ms);
    bytes = r.bytes;
  }
  return { ms: median(samples), bytes };
}

const path = (channel: string): string =>
  `/presence/get?channel=${encodeURIComponent(channel)}`;

const bench: Bench = {
  name: 'big-channel',
  description:
    'state / count-only GET at 100…100,000 users and a sweep of 10,000 clients vs count-only GET at 100',
  async run(context): Promise<BenchResult> {
    const sizes = context.smoke
      ? {
          users: [100, 300],
          rounds: 1,
          reps: () => 5,
          sweepChannels: 10,
          sweepClients: 10,
          seconds: 0,
        }
      : {
          users: [100, 1000, 10_000, 100_000],
          rounds: 3,
          reps: (n: number) => (n >= 100_000 ? 5 : n >= 10_000 ? 20 : 100),
          sweepChannels: 100,
          sweepClients: 100,
          seconds: 1,
        };
    const prefix = benchPrefix('big-channel');
    const redis = await connectRedis(context.redisUrl);
    const store = new RedisStore(redis, { keyPrefix: prefix });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let server: ChildServer | undefined;
    const full = new Map<number, { ms: number[]; bytes: number }>();
    /** `store.state()` in this process: the store's share (Lua HVALS, ioredis, JSON.parse, sort) of a GET. */
    const storeMs = new Map<number, number[]>();
    const count = new Map<number, { ms: number[]; rps: number }>();
    /** GET of the largest channel with maxUsersShown, per round. */
    const shownMs: number[] = [];
    let shownBytes = 0;
    const sweeps: number[] = [];
    /** ops/s at c50 per size and round: the cached state read, the uncached one, the ids-only read. */
    const reads = new Map<
      number,
      { cached: number[]; uncached: number[]; idsOnly: number[] }
    >();
    const uncachedStore = new RedisStore(redis, {
      keyPrefix: prefix,
      stateCacheUsers: 0,
    });
    try {
      server = await startServer({
        kind: 'presence',
        store: 'redis',
        redisUrl: context.redisUrl,
        keyPrefix: prefix,
      });
      const now = Date.now();
      const top = sizes.users[sizes.users.length - 1]!;
      for (const n of sizes.users) {
        context.log(`populating ${n} users ×${n === top ? 3 : 2}`);
        for (const [channel, rules] of [
          [`/bench/big-${n}`, FULL],
          [`/bench/count-big-${n}`, COUNT_ONLY],
          ...(n === top ? [[`/bench/shown-big-${n}`, SHOWN] as const] : []),
        ] as const) {
          const result = await runConcurrent(
            (i) =>
              store.present(
                channel,
                benchUserById(i + 1),
                'c1',
                LONG_TIMEOUT_MS,
                rules,
                now,
              ),
            { total: n, concurrency: 200, maxMs: 60_000 },
          );
          if (result.ops !== n)
            throw new Error(
              `populating ${channel} stopped at ${result.ops} of ${n}`,
            );
        }
      }
      const port = server.port;
      // The first GET of a channel resolves its config; keep that out of the figures.
      for (const n of sizes.users) {
        await get(agent, port, path(`/bench/big-${n}`));
        await get(agent, port, path(`/bench/count-big-${n}`));
      }
      await get(agent, port, path(`/bench/shown-big-${top}`));
      for (let round = 0; round < sizes.rounds; round++) {
        context.log(`round ${round + 1}/${sizes.rounds}`);
        for (const n of sizes.users) {
          const f = await latency(
            agent,
            port,
            path(`/bench/big-${n}`),
            sizes.reps(n),
          );
          // Each user is ~100 bytes of JSON: far fewer bytes means users are missing.
          if (f.bytes < n * 80)
            throw new Error(`state of ${n} users was only ${f.bytes} bytes`);
          full.set(n, {
            ms: [...(full.get(n)?.ms ?? []), f.ms],
            bytes: f.bytes,
          });
          const samples: number[] = [];
          for (let i = 0; i < sizes.reps(n); i++) {
            const t = nowMs();
            const state = await store.state(
              `/bench/big-${n}`,
              false,
              Date.now(),
            );
            samples.push(nowMs() - t);
            if (state.count !== n)
              throw new Error(
                `store.state counted ${state.count} of ${n} users`,
              );
          }
          storeMs.set(n, [...(storeMs.get(n) ?? []), median(samples)]);
        }
        const shown = await latency(
          agent,
          port,
          path(`/bench/shown-big-${top}`),
          100,
        );
        // BENCH_USERS_SHOWN users of ~100 bytes and a count: a list of everyone would be far bigger.
        if (shown.bytes > BENCH_USERS_SHOWN * 200)
          throw new Error(
            `state of ${top} users listing ${BENCH_USERS_SHOWN} was ${shown.bytes} bytes`,
          );
        shownMs.push(shown.ms);
        shownBytes = shown.bytes;
        // Count-only answers take well under a millisecond, where a busy neighbour shows: the sizes take
        // turns request by request so that any slow spell hits them all alike.
        const countSamples = new Map<number, number[]>(
          sizes.users.map((n) => [n, []]),
        );
        for (let rep = 0; rep < (context.smoke ? 10 : 200); rep++) {
          for (const n of sizes.users) {
            const r = await get(agent, port, path(`/bench/count-big-${n}`));
            countSamples.get(n)!.push(r.ms);
          }
        }
        for (const n of sizes.users) {
          count.set(n, {
            ms: [...(count.get(n)?.ms ?? []), median(countSamples.get(n)!)],
            rps: 0,
          });
        }
      }
      // State reads against the ids-only read of the same channel, taking turns per size and round.
      const readSizes = sizes.users.filter((n) => n <= 10_000);
      const readOps = (n: number) =>
        context.smoke ? 50 : Math.max(200, Math.min(5000, 2_000_000 / n));
      for (let round = 0; round < sizes.rounds; round++) {
        context.log(`state reads round ${round + 1}/${sizes.rounds}`);
        for (const n of readSizes) {
          const channel = `/bench/big-${n}`;
          const keys = store.keys.presence(channel);
          const total = readOps(n);
          const run = (op: () => Promise<unknown>) =>
            runConcurrent(op, { total, concurrency: 50, maxMs: 60_000 });
          const check = (state: { count: number }) => {
            if (state.count !== n)
              throw new Error(`store.state counted ${state.count} of ${n}`);
          };
          const idsOnly = await run(async () => {
            const replies = await redis
              .pipeline()
              .hkeys(keys.users)
              .hget(keys.bus.meta, 'id')
              .exec();
            const ids = replies?.[0]?.[1];
            if (!Array.isArray(ids) || ids.length !== n)
              throw new Error(`HKEYS answered ${JSON.stringify(ids)}`);
          });
          const cached = await run(async () =>
            check(await store.state(channel, false, Date.now())),
          );
          const uncached = await run(async () =>
            check(await uncachedStore.state(channel, false, Date.now())),
          );
          for (const [result, what] of [
            [idsOnly, 'ids-only'],
            [cached, 'cached'],
            [uncached, 'uncached'],
          ] as const) {
            if (result.ops !== total)
              throw new Error(
                `${what} reads of ${n}: ${result.ops} of ${total}`,
              );
          }
          const entry = reads.get(n) ?? {
            cached: [],
            uncached: [],
            idsOnly: [],
          };
          entry.cached.push(cached.opsPerSec);
          entry.uncached.push(uncached.opsPerSec);
          entry.idsOnly.push(idsOnly.opsPerSec);
          reads.set(n, entry);
        }
      }

      const throughput = async (n: number): Promise<void> => {
        const result = await autocannon({
          url: `http://127.0.0.1:${port}${path(`/bench/count-big-${n}`)}`,
          connections: 50,
          ...(sizes.seconds > 0
            ? { duration: sizes.seconds }
            : { amount: 200 }),
        });
        if (result.errors > 0 || result.non2xx > 0)
          throw new Error(
            `count-only GET under load: ${result.errors} errors, ${result.non2xx} non-2xx`,
          );
        rpsSamples.get(n)!.push(result.requests.average);
      };
      const rpsSamples = new Map<number, number[]>(
        sizes.users.map((n) => [n, []]),
      );
      // Smoke checks the code path only: all sizes at once (an autocannon run lasts at least 1 s).
      if (context.smoke) await Promise.all(sizes.users.map(throughput));
      else {
        // One warm-up run first: the first run under load also pays for the server's JIT warm-up. Then
        // the sizes take turns, round after round, and each keeps the median of its rounds.
        await throughput(sizes.users[0]!);
        rpsSamples.set(sizes.users[0]!, []);
        for (let round = 0; round < sizes.rounds; round++) {
          for (const n of sizes.users) await throughput(n);
        }
      }
      for (const n of sizes.users)
        count.get(n)!.rps = median(rpsSamples.get(n)!);

      for (let round = 0; round < sizes.rounds; round++) {
        context.log(`sweep round ${round + 1}/${sizes.rounds}`);
        const start = Date.now();
        const total = sizes.sweepChannels * sizes.sweepClients;
        await runConcurrent(
          (i) =>
            store.present(
              `/bench/sweep-${round}-${i % sizes.sweepChannels}`,
              benchUserById(i + 1),
              'c1',
              1000,
              FULL,
              start,
            ),
          { total, concurrency: 200, maxMs: 60_000 },
        );
        const t = nowMs();
        const swept = await store.sweep(start + 2000);
        sweeps.push(nowMs() - t);
        if (
          swept.expiredClients !== total ||
          swept.messages.length !== sizes.sweepChannels
        ) {
          throw new Error(
            `sweep removed ${swept.expiredClients} clients with ${swept.messages.length} messages, expected ${total} and ${sizes.sweepChannels}`,
          );
        }
      }
    } finally {
      agent.destroy();
      await server?.close();
      await uncachedStore.close();
      await store.close();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }

    const base = median(count.get(sizes.users[0]!)!.ms);
    const baseRps = count.get(sizes.users[0]!)!.rps;
    const rows: Table['rows'] = [];
    const figures: Record<string, number> = {};
    for (const n of sizes.users) {
      const f = median(full.get(n)!.ms);
      const c = median(count.get(n)!.ms);
      const rps = count.get(n)!.rps;
      figures[`full state ${n} ms`] = f;
      figures[`store.state ${n} ms`] = median(storeMs.get(n)!);
      figures[`count-only ${n} ms`] = c;
      figures[`count-only ${n} req/s`] = rps;
      rows.push([
        n,
        f,
        `${fmt(ratio(f, base))}×`,
        `${fmt(full.get(n)!.bytes / 1024)} KiB`,
        median(storeMs.get(n)!),
        c,
        `${fmt(ratio(c, base))}×`,
        rps,
        `${fmt(ratio(rps, baseRps))}×`,
      ]);
    }
    const readRows: Table['rows'] = [];
    const readRatios: { n: number; ratio: number }[] = [];
    for (const [n, r] of reads) {
      // Median of per-round ratios: each round's reads ran back to back under the same conditions.
      const perRound = (xs: number[]) =>
        median(xs.map((x, i) => ratio(x, r.idsOnly[i]!)));
      const cachedRatio = perRound(r.cached);
      readRatios.push({ n, ratio: cachedRatio });
      figures[`state read ${n} cached × ids-only`] = cachedRatio;
      figures[`state read ${n} uncached × ids-only`] = perRound(r.uncached);
      readRows.push([
        n,
        median(r.idsOnly),
        median(r.cached),
        `${fmt(cachedRatio)}×`,
        median(r.uncached),
        `${fmt(perRound(r.uncached))}×`,
      ]);
    }
    const sweepMs = median(sweeps);
    figures['sweep ms'] = sweepMs;
    const top = sizes.users[sizes.users.length - 1]!;
    const countRatio = ratio(median(count.get(top)!.ms), base);
    const rpsRatio = ratio(count.get(top)!.rps, baseRps);
    const shownMedian = median(shownMs);
    figures[`state ${top} listing ${BENCH_USERS_SHOWN} ms`] = shownMedian;
    rows.push([
      `${top}, listing ${BENCH_USERS_SHOWN}`,
      shownMedian,
      `${fmt(ratio(shownMedian, base))}×`,
      `${fmt(shownBytes / 1024)} KiB`,
      '',
      '',
      '',
      '',
      '',
    ]);
    const tenK = full.get(10_000);
    const tenKMs = tenK ? median(tenK.ms) : Number.NaN;
    return {
      tables: [
        {
          title:
            'GET /presence/get?channel=… (RedisStore; ms = median time to the last byte, one request at a time)',
          columns: [
            'users',
            'full ms',
            '× count@100',
            'full bytes',
            'of which store.state ms',
            'count-only ms',
            '× count@100',
            'count-only req/s (c50)',
            '× count@100',
          ],
          rows,
        },
        {
          title:
            'Full state read (RedisStore.state: users parsed and sorted) vs an ids-only read of the same channel (HKEYS users + HGET last id), 50 concurrent on one connection, ops/s',
          columns: [
            'users',
            'ids-only read',
            'state read',
            '× ids-only',
            'state read, no cache (right after a change)',
            '× ids-only',
          ],
          rows: readRows,
        },
        {
          title: `Sweep of ${sizes.sweepChannels * sizes.sweepClients} expired clients in ${sizes.sweepChannels} channels (store.sweep, in-process)`,
          columns: [
            'rounds',
            'median ms',
            'per channel ms',
            '× count-only GET@100',
          ],
          rows: [
            [
              sweeps.length,
              sweepMs,
              sweepMs / sizes.sweepChannels,
              `${fmt(ratio(sweepMs / sizes.sweepChannels, base))}×`,
            ],
          ],
        },
      ],
      targets: [
        {
          what: `count-only GET at ${top} users vs 100 users`,
          target: 'within 1.2×',
          measured: `${fmt(countRatio)}× latency, ${fmt(rpsRatio)}× throughput`,
          met: context.smoke ? null : countRatio <= 1.2 && rpsRatio >= 1 / 1.2,
        },
        ...readRatios.map(({ n, ratio: r }) => ({
          what: `full state read of ${n} users vs an ids-only read`,
          target: '≥ 1×',
          measured: `${fmt(r)}×`,
          met: context.smoke ? null : r >= 1,
        })),
        {
          what: `state of ${top} users with maxUsersShown ${BENCH_USERS_SHOWN}`,
          target: '< 5 ms',
          measured: `${fmt(shownMedian)} ms (${fmt(ratio(shownMedian, base))}× the count-only GET of 100)`,
          met: context.smoke ? null : shownMedian < 5,
        },
        {
          what: 'full state of 10,000 users',
          target: '< 20 ms',
          measured: `${fmt(tenKMs)} ms`,
          met: context.smoke ? null : tenKMs < 20,
        },
        {
          what: 'sweep of 10,000 clients in 100 channels vs reference 69 ms',
          target: 'informational',
          measured: `${fmt(sweepMs)} ms`,
          met: null,
        },
        {
          what: 'count-only state vs reference 20,000 ops/s at any size',
          target: 'informational',
          measured: `${fmt(baseRps)} req/s at 100 users, ${fmt(count.get(top)!.rps)} at ${top}`,
          met: null,
        },
      ],
      notes: [
        `latencies: ${sizes.rounds} rounds, median per round, median of rounds; throughput: autocannon 50 connections, ${sizes.seconds ? `${sizes.rounds} rounds of ${sizes.seconds} s` : 'a fixed 200 requests'} per size, sizes taking turns.`,
      ],
      figures,
    };
  },
};

export default bench;
