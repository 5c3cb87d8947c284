/**
 * store-ops: RedisStore's state-changing calls against the cheapest things one connection can do.
 *
 * Subject (one connection, concurrency 1 and 50): enter of a new user (change message included),
 * heartbeat (a repeated present), leave of a user's last client, and 50 workers entering the SAME channel.
 * Baseline on the same connection, same concurrency, same run: PING and `EVALSHA` of `return 1`.
 * Where a heartbeat's time goes, in the same run: `EVALSHA` of `return 1` with a real heartbeat's keys and
 * arguments (what passing them costs), and the heartbeat's own script call replayed alone (what Redis and
 * ioredis cost without the store's Node-side work).
 * While an operation runs, the store itself subscribes to the bus channels it publishes on (as a server
 * with held polls does), so each change message is really delivered: SPUBLISH to a live shard channel, and
 * this process receiving it (its CPU is in "Node µs/op").
 */
import type { Command, Redis } from 'ioredis';

import { presenceBusChannel } from '../server/src/core/bus-messages.js';
import { RedisStore } from '../server/src/store/redis-store.js';
import type { PublishRules } from '../server/src/core/store.js';
import { runConcurrent, type LoadResult } from './lib/load.js';
import { benchPrefix, connectRedis, deletePrefix } from './lib/redis.js';
import { benchUserById } from './lib/users.js';
import { fmt, median, ratio } from './lib/stats.js';
import type { Bench, BenchResult, Table, TargetCheck } from './lib/types.js';

/**
 * `usec` per command so far (INFO commandstats), to attribute Redis CPU to a run. Commands a script runs
 * are counted under their own names as well as inside the script's EVALSHA: `evalsha` is the script's
 * whole time, the others its parts.
 */
async function commandUsec(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const usec = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+),/gm))
    usec.set(match[1]!, Number(match[2]));
  return usec;
}

/** CPU per command between two {@link commandUsec} readings. */
function usecDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [name, usec] of after) {
    const d = usec - (before.get(name) ?? 0);
    if (d > 0) delta.set(name, d);
  }
  return delta;
}

/**
 * The Redis server's CPU so far in µs (INFO cpu: user + system, main thread), which is what one Redis
 * has to spend: commands, scripts and the network I/O of every call. Server-wide: on a shared Redis,
 * other clients add to it. (commandstats cannot give it: a script's commands are counted both inside
 * its EVALSHA and under their own names, and no I/O is in it.)
 */
async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}

/** The operations whose Redis CPU is broken down by command. */
const BROKEN_DOWN: readonly OpName[] = [
  'enter (new user)',
  'heartbeat',
  'leave (last client)',
];

const RULES: PublishRules = { countOnly: false, audience: {} };
const TIMEOUT_MS = 60_000;

type OpName =
  | 'PING'
  | 'EVALSHA return 1'
  | 'enter (new user)'
  | 'heartbeat'
  | 'EVALSHA return 1, heartbeat args'
  | 'heartbeat script alone'
  | 'leave (last client)'
  | 'enter, same channel';

const bench: Bench = {
  name: 'store-ops',
  description:
    'RedisStore enter/heartbeat/leave vs PING and trivial EVALSHA on the same connection',
  async run(context): Promise<BenchResult> {
    const sizes = context.smoke
      ? {
          rounds: 1,
          total: { 1: 40, 50: 200 } as Record<number, number>,
          warmup: 20,
        }
      : {
          rounds: 3,
          total: { 1: 3000, 50: 20_000 } as Record<number, number>,
          warmup: 1000,
        };
    const redis = await connectRedis(context.redisUrl);
    const prefix = benchPrefix('store-ops');
    const store = new RedisStore(redis, { keyPrefix: prefix });
    const sha = (await redis.script('LOAD', 'return 1')) as string;
    // The EVALSHA arguments of the store's calls, caught on their way out while `capture` is set.
    type Arg = string | Buffer | number;
    let captured: Arg[] | undefined;
    let capture = false;
    const sendCommand = redis.sendCommand.bind(redis);
    redis.sendCommand = (command: Command, ...rest: unknown[]) => {
      if (capture && command.name === 'evalsha')
        captured = command.args.slice() as Arg[];
      return (sendCommand as (...args: unknown[]) => unknown)(command, ...rest);
    };
    /** A heartbeat's EVALSHA arguments (sha, key count, keys, args) per worker, for the anatomy rows. */
    const heartbeatArgs = async (
      round: string,
      c: number,
    ): Promise<Arg[][]> => {
      const calls: Arg[][] = [];
      for (let w = 0; w < c; w++) {
        const user = benchUserById(nextUser++);
        const channel = `/bench/anatomy-${round}-${w}`;
        await store.present(channel, user, 'c1', TIMEOUT_MS, RULES, Date.now());
        capture = true;
        await store.present(channel, user, 'c1', TIMEOUT_MS, RULES, Date.now());
        capture = false;
        if (!captured) throw new Error('no EVALSHA seen for a heartbeat');
        calls.push(captured);
        lastHeartbeatArgs = captured.length;
        captured = undefined;
      }
      return calls;
    };
    let nextUser = 1;
    /** How many arguments a heartbeat's EVALSHA carried (sha and key count included). */
    let lastHeartbeatArgs = 0;
    /** Change messages the store's subscriber received (the enters, leaves, and the leave set-up). */
    let delivered = 0;
    /** The presence channels an operation publishes on, to subscribe to while it runs. */
    const channelsOf = (op: OpName, round: string, c: number): string[] => {
      const range = (n: number, name: (i: number) => string): string[] =>
        Array.from({ length: n }, (_, i) => name(i));
      switch (op) {
        case 'enter (new user)':
          return range(c, (w) => `/bench/enter-${round}-${w}`);
        case 'enter, same channel':
          return [`/bench/same-${round}`];
        case 'heartbeat':
          return range(c, (w) => `/bench/hb-${round}-${w}`);
        case 'heartbeat script alone':
          return range(c, (w) => `/bench/anatomy-${round}-${w}`);
        case 'leave (last client)':
          return range(50, (i) => `/bench/leave-${round}-${i}`);
        default:
          return [];
      }
    };
    type Measured = LoadResult & {
      redisUsPerOp: number;
      nodeUsPerOp: number;
      /** Redis µs per operation by command (see commandUsec). */
      byCommand: Map<string, number>;
    };
    const results = new Map<string, Measured[]>();
    const record = (op: OpName, c: number, result: Measured): void => {
      const key = `${op}|${c}`;
      results.set(key, [...(results.get(key) ?? []), result]);
    };

    try {
      const run = async (
        op: OpName,
        c: number,
        round: string,
        measure: boolean,
        total: number,
      ): Promise<void> => {
        const channels = channelsOf(op, round, c);
        const unsubscribe =
          channels.length > 0
            ? await store.subscribe(channels.map(presenceBusChannel), () => {
                delivered += 1;
              })
            : null;
        let fn: (i: number, w: number) => Promise<unknown>;
        switch (op) {
          case 'PING':
            fn = () => redis.ping();
            break;
          case 'EVALSHA return 1':
            fn = () => redis.evalsha(sha, 0);
            break;
          case 'enter (new user)':
            fn = (_i, w) =>
              store.present(
                `/bench/enter-${round}-${w}`,
                benchUserById(nextUser++),
                'c1',
                TIMEOUT_MS,
                RULES,
                Date.now(),
              );
            break;
          case 'enter, same channel':
            fn = () =>
              store.present(
                `/bench/same-${round}`,
                benchUserById(nextUser++),
                'c1',
                TIMEOUT_MS,
                RULES,
                Date.now(),
              );
            break;
          case 'heartbeat': {
            const users = Array.from({ length: c }, () =>
              benchUserById(nextUser++),
            );
            await Promise.all(
              users.map((user, w) =>
                store.present(
                  `/bench/hb-${round}-${w}`,
                  user,
                  'c1',
                  TIMEOUT_MS,
                  RULES,
                  Date.now(),
                ),
              ),
            );
            fn = (_i, w) =>
              store.present(
                `/bench/hb-${round}-${w}`,
                users[w]!,
                'c1',
                TIMEOUT_MS,
                RULES,
                Date.now(),
              );
            break;
          }
          case 'EVALSHA return 1, heartbeat args': {
            const calls = await heartbeatArgs(round, c);
            fn = (_i, w) =>
              redis.evalsha(
                sha,
                ...(calls[w]!.slice(1) as [number, ...string[]]),
              );
            break;
          }
          case 'heartbeat script alone': {
            const calls = await heartbeatArgs(round, c);
            fn = (_i, w) =>
              redis.evalsha(...(calls[w]! as [string, number, ...string[]]));
            break;
          }
          case 'leave (last client)': {
            const first = nextUser;
            nextUser += total;
            await runConcurrent(
              (i) =>
                store.present(
                  `/bench/leave-${round}-${i % 50}`,
                  benchUserById(first + i),
                  'c1',
                  TIMEOUT_MS,
                  RULES,
                  Date.now(),
                ),
              { total, concurrency: 100, maxMs: 60_000 },
            );
            fn = async (i) => {
              const result = await store.leave(
                `/bench/leave-${round}-${i % 50}`,
                first + i,
                'c1',
                RULES,
                Date.now(),
              );
              if (!result.changed)
                throw new Error('leave of a present user reported no change');
            };
            break;
          }
        }
        // Where the time goes: Redis' own CPU per operation (INFO cpu, server-wide: other users of
        // a shared Redis add a little) and this process' CPU per operation (ioredis, the store, JSON).
        const redisBefore = await commandUsec(redis);
        const redisCpuBefore = await redisCpuUs(redis);
        const cpuBefore = process.cpuUsage();
        const result = await runConcurrent(fn, {
          total,
          concurrency: c,
          maxMs: 20_000,
        });
        const cpu = process.cpuUsage(cpuBefore);
        const redisCpuAfter = await redisCpuUs(redis);
        const redisAfter = await commandUsec(redis);
        await unsubscribe?.();
        if (measure) {
          const delta = usecDelta(redisBefore, redisAfter);
          record(op, c, {
            ...result,
            redisUsPerOp: (redisCpuAfter - redisCpuBefore) / result.ops,
            nodeUsPerOp: (cpu.user + cpu.system) / result.ops,
            byCommand: new Map(
              [...delta].map(([name, usec]) => [name, usec / result.ops]),
            ),
          });
        }
      };

      const ops: OpName[] = [
        'PING',
        'EVALSHA return 1',
        'enter (new user)',
        'heartbeat',
        'EVALSHA return 1, heartbeat args',
        'heartbeat script alone',
        'leave (last client)',
      ];
      context.log('warm-up');
      for (const op of ops) await run(op, 50, 'warm', false, sizes.warmup);
      for (let round = 0; round < sizes.rounds; round++) {
        context.log(`round ${round + 1}/${sizes.rounds}`);
        for (const c of [1, 50]) {
          for (const op of ops)
            await run(op, c, `r${round}c${c}`, true, sizes.total[c]!);
        }
        await run(
          'enter, same channel',
          50,
          `r${round}`,
          true,
          sizes.total[50]!,
        );
      }
      if (delivered === 0)
        throw new Error('the subscriber received none of the change messages');
    } finally {
      await store.close();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }

    const med = (
      op: OpName,
      c: number,
      field: Exclude<keyof Measured, 'byCommand'>,
    ): number => median((results.get(`${op}|${c}`) ?? []).map((r) => r[field]));
    /**
     * Median over rounds of (op / baseline) within each round: a slow minute on a shared machine moves
     * both sides of a round, so per-round ratios are steadier than a ratio of medians.
     */
    const ratioTo = (op: OpName, base: OpName, c: number): number => {
      const ops = results.get(`${op}|${c}`) ?? [];
      const bases = results.get(`${base}|${c}`) ?? [];
      return median(
        ops.map((r, i) =>
          ratio(r.opsPerSec, bases[i]?.opsPerSec ?? Number.NaN),
        ),
      );
    };
    const rows: Table['rows'] = [];
    const figures: Record<string, number> = {};
    for (const c of [1, 50]) {
      const ops: OpName[] = [
        'PING',
        'EVALSHA return 1',
        'enter (new user)',
        'heartbeat',
        'EVALSHA return 1, heartbeat args',
        'heartbeat script alone',
        'leave (last client)',
      ];
      if (c === 50) ops.push('enter, same channel');
      for (const op of ops) {
        const opsPerSec = med(op, c, 'opsPerSec');
        figures[`${op} c${c} ops/s`] = opsPerSec;
        rows.push([
          op,
          c,
          opsPerSec,
          med(op, c, 'p50Ms'),
          med(op, c, 'p99Ms'),
          `${fmt(ratioTo(op, 'EVALSHA return 1', c))}×`,
          `${fmt(ratioTo(op, 'PING', c))}×`,
          med(op, c, 'redisUsPerOp'),
          med(op, c, 'nodeUsPerOp'),
        ]);
      }
    }
    // Where Redis' time goes, per operation at c50: each command's µs (median of rounds), largest first.
    const breakdownRows: Table['rows'] = BROKEN_DOWN.map((op) => {
      const rounds = results.get(`${op}|50`) ?? [];
      const names = new Set(rounds.flatMap((r) => [...r.byCommand.keys()]));
      const parts = [...names]
        .map((name) => ({
          name,
          us: median(rounds.map((r) => r.byCommand.get(name) ?? 0)),
        }))
        .filter((part) => part.us >= 0.05 && part.name !== 'info')
        .sort((a, b) => b.us - a.us);
      const script = parts.find((part) => part.name === 'evalsha')?.us ?? 0;
      return [
        op,
        med(op, 50, 'redisUsPerOp'),
        script,
        parts
          .filter((part) => part.name !== 'evalsha')
          .map((part) => `${part.name} ${fmt(part.us)}`)
          .join(', '),
      ];
    });
    const floor50 = med('EVALSHA return 1', 50, 'opsPerSec');
    const check = (what: string, op: OpName, wanted: number): TargetCheck => {
      const r = ratioTo(op, 'EVALSHA return 1', 50);
      return {
        what,
        target: `≥ ${wanted}× EVALSHA floor`,
        measured: `${fmt(r)}× (${fmt(med(op, 50, 'opsPerSec'))} ops/s vs ${fmt(floor50)})`,
        met: context.smoke ? null : r >= wanted,
      };
    };
    const sameP99 = med('enter, same channel', 50, 'p99Ms');
    return {
      tables: [
        {
          title:
            'RedisStore operations (medians of rounds; ratios: median of per-round ratios; latency per operation)',
          columns: [
            'operation',
            'conc.',
            'ops/s',
            'p50 ms',
            'p99 ms',
            '× EVALSHA',
            '× PING',
            'Redis CPU µs/op',
            'Node µs/op',
          ],
          rows,
        },
        {
          title:
            "Where Redis' time goes, c50: its CPU per operation (INFO cpu: commands, scripts, network I/O), the scripts' share, and each command's (INFO commandstats: a script's commands count inside its EVALSHA and under their own names)",
          columns: [
            'operation',
            'Redis CPU µs/op',
            'in scripts (EVALSHA µs/op)',
            'µs/op by command, inside scripts or sent alone',
          ],
          rows: breakdownRows,
        },
      ],
      targets: [
        check('enter of a new user, c50 (issue 17)', 'enter (new user)', 0.35),
        check('heartbeat, c50 (issue 17)', 'heartbeat', 0.85),
        check(
          '50 workers entering the same channel',
          'enter, same channel',
          0.25,
        ),
        {
          what: '50 workers on the same channel: p99',
          target: '< 10 ms',
          measured: `${fmt(sameP99)} ms`,
          met: context.smoke ? null : sameP99 < 10,
        },
        {
          what: "where a heartbeat's time goes, c50",
          target: 'informational',
          measured: `EVALSHA return 1 with a heartbeat's ${lastHeartbeatArgs - 2} keys and arguments: ${fmt(ratioTo('EVALSHA return 1, heartbeat args', 'EVALSHA return 1', 50))}× the floor; the heartbeat's script call alone: ${fmt(ratioTo('heartbeat script alone', 'EVALSHA return 1', 50))}×; the store's heartbeat: ${fmt(ratioTo('heartbeat', 'EVALSHA return 1', 50))}×`,
          met: null,
        },
        {
          what: 'floors vs reference (PING 127k, EVALSHA 117k ops/s at c50)',
          target: 'informational',
          measured: `PING ${fmt(med('PING', 50, 'opsPerSec'))}, EVALSHA ${fmt(floor50)} ops/s`,
          met: null,
        },
      ],
      notes: [
        `${sizes.rounds} rounds of ${sizes.total[1]} ops at c1 and ${sizes.total[50]} at c50, ops interleaved per round; one ioredis connection shared by the store and the baselines.`,
        "enter = one Lua script (state + backlog append + SPUBLISH) in one round trip; a channel's first present adds one ZADD to the sweep index.",
        "Redis CPU µs/op is the redis-server's own CPU (INFO cpu) over the run divided by its operations; entries before 2026-12-03 16:30 summed INFO commandstats instead, which counts a script's commands twice (inside the EVALSHA and under their names) and leaves network I/O out: compare like with like.",
        `The store subscribes to every bus channel an operation publishes on while it runs (its subscriber connection received ${delivered} change messages), so SPUBLISH reaches a live subscriber and delivery costs this process' CPU as in a server.`,
      ],
      figures,
    };
  },
};

export default bench;
