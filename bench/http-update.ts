/**
 * http-update: `POST /presence/update` on the real server as the CLI runs it (`ember-presence-server
 * --jwt-secret … --config bench/lib/cli-config.ts`, through tsx): HS256 JWT auth on every request
 * (every token seen before, so verified-token cache hits: a deployment's steady state), the default rate limit (20 per user per 10 s, in the store), the CSRF rules as a non-browser
 * client sending `Authorization: Bearer` meets them (no Origin, no cookie), 10,000 distinct users with
 * 32-hex client ids; memory and Redis stores, 1 and 10 channels per update. Driven by autocannon with 50
 * connections, against a bare Express route that parses the same form body and answers `{}` — each server
 * in its own process, the load generator in this one.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import autocannon, { type Result } from 'autocannon';
import { SignJWT } from 'jose';

import { startListening } from '../e2e/support/server.js';
import { DEFAULT_UPDATE_RATE_LIMIT } from '../server/src/core/http-handlers.js';
import { startServer } from './lib/child.js';
import { benchPrefix, connectRedis, deletePrefix } from './lib/redis.js';
import { fmt, median, ratio } from './lib/stats.js';
import type { Bench, BenchResult, Table } from './lib/types.js';
import { benchUserById } from './lib/users.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../server/src/main.ts', import.meta.url));
const CLI_CONFIG = fileURLToPath(
  new URL('./lib/cli-config.ts', import.meta.url),
);

/** A signed-in user of the load: their bearer token and their tab's update bodies. */
interface Identity {
  authorization: string;
  /** Form body by number of channels entered. */
  bodies: Record<number, string>;
}

function formBody(clientId: string, channels: number): string {
  const params = new URLSearchParams({ client_id: clientId });
  for (let i = 0; i < channels; i++)
    params.append('present_channels[]', `/bench/update-${i}`);
  return params.toString();
}

/** An HS256 token for user `id` as a host backend signs it (profile claims, `exp` in an hour). */
async function token(id: number, secret: Uint8Array): Promise<string> {
  const user = benchUserById(id);
  return new SignJWT({
    username: user.username,
    name: user.name,
    avatar_template: user.avatar_template,
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(id))
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(secret);
}

async function identities(
  count: number,
  secret: Uint8Array,
): Promise<Identity[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      // A realistic client id: what the addon makes (16 random bytes in hex).
      const clientId = randomBytes(16).toString('hex');
      return {
        authorization: `Bearer ${await token(i + 1, secret)}`,
        bodies: { 1: formBody(clientId, 1), 10: formBody(clientId, 10) },
      };
    }),
  );
}

interface Case {
  label: string;
  server: 'bare' | 'memory' | 'redis';
  channels: number;
}

const CASES: Case[] = [
  { label: 'bare Express form route', server: 'bare', channels: 1 },
  { label: 'update, CLI, MemoryStore', server: 'memory', channels: 1 },
  { label: 'update, CLI, RedisStore', server: 'redis', channels: 1 },
  { label: 'bare Express form route', server: 'bare', channels: 10 },
  { label: 'update, CLI, MemoryStore', server: 'memory', channels: 10 },
  { label: 'update, CLI, RedisStore', server: 'redis', channels: 10 },
];

/** A server under test: its base URL and how to stop it. */
interface Running {
  url: string;
  close(): Promise<void>;
}

/** The real CLI, with JWT verification, the bench channels and the default rate limit. */
async function startCli(
  secret: string,
  redis?: { url: string; prefix: string },
): Promise<Running> {
  const env = { ...process.env };
  // Flags alone choose the store and the secret.
  for (const name of ['REDIS_URL', 'PRESENCE_JWT_SECRET', 'PORT'])
    delete env[name];
  const server = await startListening(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      '--port',
      '0',
      // `=` form: a secret may begin with "-", which a separate argument
      // would make parseArgs read as an option.
      `--jwt-secret=${secret}`,
      '--config',
      CLI_CONFIG,
      ...(redis
        ? ['--redis-url', redis.url, '--redis-key-prefix', redis.prefix]
        : []),
    ],
    { cwd: REPO_ROOT, env, store: redis ? 'redis' : 'memory' },
  );
  return { url: server.url, close: () => server.stop() };
}

/**
 * `size` > 0: seconds of load with 50 connections; 0: a fixed 100 requests on 10 (smoke); `'each'`: one
 * request per user, in order, on 50 connections (every user enters: the steady state the rounds measure).
 */
async function load(
  url: string,
  users: readonly Identity[],
  channels: number,
  size: number | 'each',
): Promise<Result> {
  let next = 0;
  const result = await autocannon({
    url,
    ...(size === 'each'
      ? { connections: 50, amount: users.length }
      : size > 0
        ? { connections: 50, duration: size }
        : { connections: 10, amount: 100 }),
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/presence/update',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        // One of the users per request: heartbeats once every user has entered, as in production.
        setupRequest: (request) => {
          const user =
            size === 'each'
              ? users[next++ % users.length]!
              : users[Math.floor(Math.random() * users.length)]!;
          return {
            ...request,
            headers: { ...request.headers, authorization: user.authorization },
            body: user.bodies[channels]!,
          };
        },
      },
    ],
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `${url}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers under load`,
    );
  }
  return result;
}

async function post(
  url: string,
  body: string,
  authorization?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/presence/update`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(authorization ? { authorization } : {}),
    },
    body,
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
  };
}

/**
 * Proves the server does what the bench claims: a signed-in update enters every channel, no token and a
 * token signed with another secret are refused, and the rate limit is on (a user beyond it gets a 429).
 */
async function checkServer(
  url: string,
  user: Identity,
  outsider: Identity,
  forged: Identity,
): Promise<void> {
  for (const channels of [1, 10]) {
    const answer = await post(url, user.bodies[channels]!, user.authorization);
    const entered = Object.values(answer.body).filter((v) => v === true);
    if (answer.status !== 200 || entered.length !== channels)
      throw new Error(
        `${url}: unexpected answer ${answer.status} ${JSON.stringify(answer.body)}`,
      );
  }
  const anonymous = await post(url, user.bodies[1]!);
  const badToken = await post(url, user.bodies[1]!, forged.authorization);
  if (anonymous.status !== 403 || badToken.status !== 403)
    throw new Error(
      `${url}: updates without a valid token answered ${anonymous.status} and ${badToken.status}, not 403`,
    );
  const statuses: number[] = [];
  for (let i = 0; i <= DEFAULT_UPDATE_RATE_LIMIT.limit; i++)
    statuses.push(
      (await post(url, outsider.bodies[1]!, outsider.authorization)).status,
    );
  if (statuses.at(-1) !== 429 || statuses.slice(0, -1).some((s) => s !== 200))
    throw new Error(
      `${url}: the default rate limit is not on (statuses ${statuses.join(' ')})`,
    );
}

const bench: Bench = {
  name: 'http-update',
  description:
    'POST /presence/update (the CLI: JWT, rate limit on; memory/Redis, 1/10 channels) vs a bare Express form route',
  async run(context): Promise<BenchResult> {
    const sizes = context.smoke
      ? { rounds: 1, seconds: 0, warmup: 0, users: 200 }
      : { rounds: 3, seconds: 2, warmup: 1, users: 10_000 };
    const prefix = benchPrefix('http-update');
    const secret = randomBytes(32).toString('base64url');
    const key = new TextEncoder().encode(secret);
    // The load's users, then the rate-limit check's own user; and a token signed with the wrong key.
    const all = await identities(sizes.users + 1, key);
    const users = all.slice(0, sizes.users);
    const outsider = all[sizes.users]!;
    const forged: Identity = {
      ...users[0]!,
      authorization: `Bearer ${await token(1, new TextEncoder().encode(`not-${secret}`))}`,
    };
    const servers: Partial<Record<Case['server'], Running>> = {};
    const results = new Map<string, Result[]>();
    try {
      // Started together (each compiles the server through tsx); a failed start still closes the others.
      const started = await Promise.allSettled([
        startServer({ kind: 'bare-form' }).then(
          (s) =>
            (servers.bare = {
              url: `http://127.0.0.1:${s.port}`,
              close: () => s.close(),
            }),
        ),
        startCli(secret).then((s) => (servers.memory = s)),
        startCli(secret, { url: context.redisUrl, prefix }).then(
          (s) => (servers.redis = s),
        ),
      ]);
      for (const outcome of started)
        if (outcome.status === 'rejected') throw outcome.reason;
      for (const server of [servers.memory!, servers.redis!])
        await checkServer(server.url, users[0]!, outsider, forged);
      const measure = async (c: Case): Promise<void> => {
        const key = `${c.server}|${c.channels}`;
        const result = await load(
          servers[c.server]!.url,
          users,
          c.channels,
          sizes.seconds,
        );
        results.set(key, [...(results.get(key) ?? []), result]);
      };
      // Every user enters every case's channels once (their token verified, their client known): the
      // rounds then measure the steady state of a deployment, heartbeats of present clients.
      context.log(`signed ${users.length} tokens; every user enters`);
      for (const c of CASES)
        if (c.server !== 'bare')
          await load(servers[c.server]!.url, users, c.channels, 'each');
      if (context.smoke) {
        // Smoke checks the code paths, not the figures: every case at once (autocannon runs last ≥ 1 s each).
        await Promise.all(CASES.map(measure));
      } else {
        context.log('warm-up');
        for (const c of CASES)
          await load(servers[c.server]!.url, users, c.channels, sizes.warmup);
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
    const target = (
      server: 'memory' | 'redis',
      channels: number,
      wanted: number,
    ): BenchResult['targets'][number] => {
      const measured = versusBare({ server, channels });
      return {
        what: `POST /presence/update, ${channels} channel${channels > 1 ? 's' : ''}, ${server === 'redis' ? 'Redis' : 'memory'} (CLI: JWT + rate limit)`,
        target: `≥ ${wanted}× bare Express route`,
        measured: `${fmt(measured)}×`,
        met: context.smoke ? null : measured >= wanted,
      };
    };
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
        target('redis', 1, 0.6),
        target('redis', 10, 0.4),
        target('memory', 1, 0.6),
        target('memory', 10, 0.4),
        {
          what: 'bare Express form route vs reference (≈ 5,000 req/s)',
          target: 'informational',
          measured: `${fmt(med({ server: 'bare', channels: 1 }, rps))} req/s`,
          met: null,
        },
      ],
      notes: [
        `${sizes.rounds} rounds × ${sizes.seconds} s per case, cases interleaved; each server in its own process (the presence servers are the CLI, \`ember-presence-server --jwt-secret … --config bench/lib/cli-config.ts\`), autocannon in the runner's.`,
        `${fmt(users.length)} distinct users, each with an HS256 token (exp 1 h) sent as \`Authorization: Bearer\` and a 32-hex client id, picked at random per request; every user entered once before the warm-up, so the rounds are heartbeats of known clients with tokens seen before, a deployment's steady state; the default rate limit (${DEFAULT_UPDATE_RATE_LIMIT.limit} per ${DEFAULT_UPDATE_RATE_LIMIT.windowMs / 1000} s per user) on, and checked to answer 429 beyond it; no Origin, no cookie (CSRF rule 3). The bare route gets the same requests.`,
      ],
      figures,
    };
  },
};

export default bench;
