/**
 * http-update: `POST /presence/update` through the real `createApp` (memory and Redis stores, 1 and 10
 * channels), driven by autocannon with 50 connections, against a bare Express route that parses the same
 * form body and answers `{}` — each server in its own process, the load generator in this one.
 */
import autocannon, { type Result } from 'autocannon';

import { startServer, type ChildServer } from './lib/child.js';
import { benchPrefix, connectRedis, deletePrefix } from './lib/redis.js';
import { fmt, median, ratio } from './lib/stats.js';
import type { Bench, BenchResult, Table } from './lib/types.js';

const USERS = 1000;

function formBody(channels: number): string {
  const params = new URLSearchParams({ client_id: 'bench-client' });
  for (let i = 0; i < channels; i++)
    params.append('present_channels[]', `/bench/update-${i}`);
  return params.toString();
}

interface Case {
  label: string;
  server: 'bare' | 'memory' | 'redis';
  channels: number;
}

const CASES: Case[] = [
  { label: 'bare Express form route', server: 'bare', channels: 1 },
  { label: 'update, MemoryStore', server: 'memory', channels: 1 },
  { label: 'update, RedisStore', server: 'redis', channels: 1 },
  { label: 'bare Express form route', server: 'bare', channels: 10 },
  { label: 'update, MemoryStore', server: 'memory', channels: 10 },
  { label: 'update, RedisStore', server: 'redis', channels: 10 },
];

/** `size` > 0: seconds of load with 50 connections; 0: a fixed 100 requests on 10 (smoke). */
async function load(
  port: number,
  channels: number,
  size: number,
): Promise<Result> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    ...(size > 0
      ? { connections: 50, duration: size }
      : { connections: 10, amount: 100 }),
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/presence/update',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: formBody(channels),
        // One of USERS users per request: mostly heartbeats once every user has entered, as in production.
        setupRequest: (request) => ({
          ...request,
          headers: {
            ...request.headers,
            'x-bench-user': String(1 + Math.floor(Math.random() * USERS)),
          },
        }),
      },
    ],
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `port ${port}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers under load`,
    );
  }
  return result;
}

/** One real request, to prove the endpoint does what the bench claims (every channel entered). */
async function checkAnswer(
  port: number,
  channels: number,
  presence: boolean,
): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/presence/update`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-bench-user': '1',
    },
    body: formBody(channels),
  });
  const body = (await response.json()) as Record<string, unknown>;
  const expected = presence ? channels : 0;
  const entered = Object.values(body).filter((v) => v === true).length;
  if (response.status !== 200 || entered !== expected) {
    throw new Error(
      `port ${port}: unexpected answer ${response.status} ${JSON.stringify(body)}`,
    );
  }
}

const bench: Bench = {
  name: 'http-update',
  description:
    'POST /presence/update (createApp, memory/Redis, 1/10 channels) vs a bare Express form route',
  async run(context): Promise<BenchResult> {
    const sizes = context.smoke
      ? { rounds: 1, seconds: 0, warmup: 0 }
      : { rounds: 3, seconds: 2, warmup: 1 };
    const prefix = benchPrefix('http-update');
    const servers: Partial<Record<Case['server'], ChildServer>> = {};
    const results = new Map<string, Result[]>();
    try {
      // Started together (each compiles the server through tsx); a failed start still closes the others.
      await Promise.all([
        startServer({ kind: 'bare-form' }).then((s) => (servers.bare = s)),
        startServer({ kind: 'presence', store: 'memory' }).then(
          (s) => (servers.memory = s),
        ),
        startServer({
          kind: 'presence',
          store: 'redis',
          redisUrl: context.redisUrl,
          keyPrefix: prefix,
        }).then((s) => (servers.redis = s)),
      ]);
      for (const c of CASES)
        await checkAnswer(
          servers[c.server]!.port,
          c.channels,
          c.server !== 'bare',
        );
      const measure = async (c: Case): Promise<void> => {
        const key = `${c.server}|${c.channels}`;
        const result = await load(
          servers[c.server]!.port,
          c.channels,
          sizes.seconds,
        );
        results.set(key, [...(results.get(key) ?? []), result]);
      };
      if (context.smoke) {
        // Smoke checks the code paths, not the figures: every case at once (autocannon runs last ≥ 1 s each).
        await Promise.all(CASES.map(measure));
      } else {
        context.log('warm-up');
        for (const c of CASES)
          await load(servers[c.server]!.port, c.channels, sizes.warmup);
        for (let round = 0; round < sizes.rounds; round++) {
          context.log(`round ${round + 1}/${sizes.rounds}`);
          for (const c of CASES) await measure(c);
        }
      }
    } finally {
      await Promise.all(Object.values(servers).map((s) => s.close()));
      const redis = await connectRedis(context.redisUrl);
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }

    const med = (
      c: Pick<Case, 'server' | 'channels'>,
      pick: (r: Result) => number,
    ): number =>
      median((results.get(`${c.server}|${c.channels}`) ?? []).map(pick));
    const rps = (r: Result): number => r.requests.average;
    /** Median over rounds of (case / bare route with the same body) within each round. */
    const versusBare = (c: Pick<Case, 'server' | 'channels'>): number => {
      const bare = results.get(`bare|${c.channels}`) ?? [];
      return median(
        (results.get(`${c.server}|${c.channels}`) ?? []).map((r, i) =>
          ratio(rps(r), bare[i] ? rps(bare[i]) : Number.NaN),
        ),
      );
    };
    const rows: Table['rows'] = [];
    const figures: Record<string, number> = {};
    for (const c of CASES) {
      const value = med(c, rps);
      figures[`${c.server} ${c.channels}ch req/s`] = value;
      rows.push([
        c.label,
        c.channels,
        value,
        med(c, (r) => r.latency.p50),
        med(c, (r) => r.latency.p99),
        `${fmt(versusBare(c))}×`,
      ]);
    }
    const redis1 = versusBare({ server: 'redis', channels: 1 });
    return {
      tables: [
        {
          title:
            'POST /presence/update, autocannon 50 connections (medians of rounds; ratio: median of per-round ratios)',
          columns: [
            'server',
            'channels',
            'req/s',
            'p50 ms',
            'p99 ms',
            '× bare route',
          ],
          rows,
        },
      ],
      targets: [
        {
          what: 'POST /presence/update, 1 channel, Redis',
          target: '≥ 0.6× bare Express route',
          measured: `${fmt(redis1)}×`,
          met: context.smoke ? null : redis1 >= 0.6,
        },
        {
          what: 'bare Express form route vs reference (≈ 5,000 req/s)',
          target: 'informational',
          measured: `${fmt(med({ server: 'bare', channels: 1 }, rps))} req/s`,
          met: null,
        },
      ],
      notes: [
        `${sizes.rounds} rounds × ${sizes.seconds} s per case, cases interleaved; each server in its own process, autocannon in the runner's; ${USERS} users picked at random per request (mostly heartbeats), rate limit off, no Origin/cookies (CSRF rule 3).`,
      ],
      figures,
    };
  },
};

export default bench;
