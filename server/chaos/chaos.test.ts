// npm run test:chaos — faults under traffic, on a Redis of its own (never the shared one): two server
// processes (the CLI) on one private redis-server, a dozen users entering and leaving three channels
// through either process, and followers that read presence the way the addon does (a snapshot, then
// consecutive message ids from a long poll; anything else refetches). Then, in order:
//   1. Redis is SIGKILLed and comes back EMPTY (no persistence) while traffic goes on;
//   2. server A is SIGKILLed in the middle of updates, and started again;
//   3. server B gets SIGTERM with held polls and updates in flight, and is started again.
// Traffic stops; every client times out. Then it checks: no request ever got a 500; every follower's
// view equals the server's state without a reload; and the invariants over Redis hold (users hash =
// clients set, consecutive backlog ids, the backlog replays to the stored members, every channel with
// clients is in the sweep index). Bounded: about a minute.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { RedisKeys } from '../src/store/keys.js';
import { ScratchRedis } from '../test/support/http-redis-server.js';
import { startCli, type RunningServer } from '../test/support/http-spawn.js';
import { sweepIndexViolations } from '../test/support/redis-invariants.js';
import { redisStateViolations } from './invariants.js';

const SECRET = 'chaos-secret-that-is-long-enough-0123456789';
const PREFIX = 'chaos:';
const CHANNELS = ['/room/1', '/room/2', '/room/3'];
const USERS = Array.from({ length: 12 }, (_, i) => i + 1);
const TIMEOUT_S = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const dir = mkdtempSync(join(tmpdir(), 'presence-chaos-'));
const configFile = join(dir, 'chaos-config.mjs');
writeFileSync(
  configFile,
  `export default (presence) => presence.registerPrefix('room', () => ({ public: true, timeout: ${TIMEOUT_S} }));\n`,
);

let redis: ScratchRedis;
const servers: { a?: RunningServer; b?: RunningServer } = {};
const statuses = new Map<number, number>();
const serverErrors: string[] = [];
let running = true;
/** Aborted once the checks no longer need traffic: ends the followers' held polls at once. */
const halt = new AbortController();

function startServer(): Promise<RunningServer> {
  return startCli([
    '--redis-url',
    redis.url,
    '--redis-key-prefix',
    PREFIX,
    '--config',
    configFile,
    '--jwt-secret',
    SECRET,
    '--log-level',
    'info', // startCli waits for the "listening" line
  ]);
}

/** A live server's URL, at random (what a load balancer does). */
function anyServer(): string | undefined {
  const live = [servers.a, servers.b].filter(
    (s): s is RunningServer =>
      s !== undefined && s.child.exitCode === null && !s.child.killed,
  );
  return live[Math.floor(Math.random() * live.length)]?.url;
}

async function call(
  path: string,
  init: RequestInit & { timeoutMs?: number } = {},
): Promise<Response | null> {
  const base = anyServer();
  if (!base) return null;
  try {
    const response = await fetch(`${base}${path}`, {
      ...init,
      signal: AbortSignal.any([
        halt.signal,
        AbortSignal.timeout(init.timeoutMs ?? 5_000),
      ]),
    });
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    if (response.status >= 500 && response.status !== 503)
      serverErrors.push(
        `${init.method ?? 'GET'} ${path}: ${response.status} ${await response.clone().text()}`,
      );
    return response;
  } catch {
    return null; // the process was killed under us: a network error, as a browser would see
  }
}

/** One user's tab: enters and leaves channels at random, heart-beating what it is in. */
async function client(userId: number): Promise<void> {
  const token = await new SignJWT({ username: `u${userId}` })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(userId))
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
  let present = new Set<string>();
  while (running) {
    const next = new Set(CHANNELS.filter(() => Math.random() < 0.5));
    const leave = [...present].filter((c) => !next.has(c));
    const body = new URLSearchParams({ client_id: `tab-${userId}` });
    for (const c of next) body.append('present_channels[]', c);
    for (const c of leave) body.append('leave_channels[]', c);
    await call('/presence/update', {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
      body,
    });
    present = next;
    await sleep(200 + Math.random() * 400);
  }
}

/**
 * What a follower shows for each channel, kept the way the addon keeps it: the message bus keeps a
 * position per channel (moved by every message and by `/__status` entries, as message-bus-client does),
 * and the presence data its own last applied id, which only `last + 1` may follow.
 */
class Follower {
  readonly views = new Map<
    string,
    { users: Set<number>; last: number; position: number }
  >();
  refetches = 0;

  constructor(readonly id: string) {}

  async run(): Promise<void> {
    await this.fetch();
    while (running || this.settling) {
      const positions: Record<string, number> = {};
      for (const [channel, view] of this.views)
        positions[`/presence${channel}`] = view.position;
      const response = await call(`/message-bus/${this.id}/poll`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Dont-Chunk': 'true' },
        body: JSON.stringify({ ...positions, __seq: Date.now() }),
        timeoutMs: 30_000,
      });
      if (!response || !response.ok) {
        await sleep(300);
        continue;
      }
      const messages = (await response.json()) as {
        channel: string;
        message_id: number;
        data: Record<string, unknown>;
      }[];
      let resync = false;
      for (const message of messages) {
        if (message.channel === '/__status') {
          for (const [bus, id] of Object.entries(
            message.data as Record<string, number>,
          )) {
            const view = this.views.get(bus.slice('/presence'.length));
            if (view) view.position = id;
          }
          continue;
        }
        const view = this.views.get(message.channel.slice('/presence'.length));
        if (!view) continue;
        view.position = message.message_id;
        const first = view.last === 0 && message.message_id % 1000 === 1;
        if (message.message_id !== view.last + 1 && !first) {
          resync = true;
          break;
        }
        view.last = message.message_id;
        for (const user of (message.data['entering_users'] as
          { id: number }[] | undefined) ?? [])
          view.users.add(user.id);
        for (const id of (message.data['leaving_user_ids'] as
          number[] | undefined) ?? [])
          view.users.delete(id);
      }
      if (resync) await this.fetch();
    }
  }

  settling = false;

  async fetch(): Promise<void> {
    this.refetches += 1;
    for (const [channel, state] of await readStates()) {
      this.views.set(channel, {
        users: state.users,
        last: state.last,
        position: state.last,
      });
    }
  }
}

/** Every channel's state as the server answers it (retried until a server answers 200). */
async function readStates(): Promise<
  Map<string, { users: Set<number>; last: number }>
> {
  const query = CHANNELS.map((c) => `channels[]=${encodeURIComponent(c)}`).join(
    '&',
  );
  while (!halt.signal.aborted) {
    const response = await call(`/presence/get?${query}`);
    if (response?.ok) {
      const body = (await response.json()) as Record<
        string,
        { users: { id: number }[]; last_message_id: number | null }
      >;
      return new Map(
        CHANNELS.map((c) => [
          c,
          {
            users: new Set(body[c]!.users.map((u) => u.id)),
            last: body[c]!.last_message_id ?? 0,
          },
        ]),
      );
    }
    await sleep(300);
  }
  return new Map();
}

void before(async () => {
  redis = await ScratchRedis.start();
  [servers.a, servers.b] = await Promise.all([startServer(), startServer()]);
});

void after(async () => {
  running = false;
  await Promise.all([servers.a?.stop(), servers.b?.stop()]);
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
});

void describe('chaos: Redis reset, a killed server, a stopped server — under traffic', () => {
  void it('answers no 500, leaves no ghost in any follower, and keeps every invariant over Redis', async () => {
    const started = Date.now();
    const followers = [
      new Follower('f1'),
      new Follower('f2'),
      new Follower('f3'),
    ];
    const work = [
      ...USERS.map((id) => client(id)),
      ...followers.map((f) => f.run()),
    ];

    await sleep(4_000);
    // 1. Redis dies and comes back empty.
    await redis.stop();
    await sleep(2_000);
    await redis.resume();
    await sleep(6_000);
    // 2. Server A is killed mid-update, and started again.
    servers.a!.child.kill('SIGKILL');
    await servers.a!.exited;
    servers.a = await startServer();
    await sleep(4_000);
    // 3. Server B is stopped gracefully with held polls and updates in flight, and started again.
    const stopping = servers.b!.stop();
    const exitCode = await stopping;
    assert.equal(exitCode, 0, 'a SIGTERM exits 0');
    servers.b = await startServer();
    await sleep(4_000);

    // Traffic stops; every client times out (3 s) and the sweeper (every 5 s) announces it.
    for (const f of followers) f.settling = true;
    running = false;
    const deadline = Date.now() + 25_000;
    let converged = false;
    let last = '';
    while (!converged && Date.now() < deadline) {
      await sleep(1_000);
      const truth = await readStates();
      const empty = [...truth.values()].every(({ users }) => users.size === 0);
      converged =
        empty &&
        followers.every((f) =>
          CHANNELS.every(
            (c) => f.views.get(c)?.users.size === truth.get(c)?.users.size,
          ),
        );
      last = followers
        .map(
          (f) =>
            `${f.id}: ${CHANNELS.map((c) => [...(f.views.get(c)?.users ?? [])].join('|')).join(' / ')}`,
        )
        .join('; ');
    }
    for (const f of followers) f.settling = false;
    // The followers' polls would otherwise wait out their hold (25 s) with nothing left to say.
    halt.abort();
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(work),
      new Promise((resolve) => (bound = setTimeout(resolve, 35_000))),
    ]);
    // A pending bound would keep the test process alive for its whole 35 s.
    clearTimeout(bound);

    console.log(
      `# chaos: ${Math.round((Date.now() - started) / 1000)} s; statuses ${JSON.stringify(Object.fromEntries(statuses))}; follower refetches ${followers.map((f) => f.refetches).join(',')}`,
    );
    assert.deepEqual(
      serverErrors,
      [],
      'no 500 (503 during the Redis outage is expected)',
    );
    assert.ok(
      converged,
      `every follower shows what the server has, no ghost: ${last}`,
    );

    const admin = new Redis(redis.url, { maxRetriesPerRequest: 0 });
    try {
      const keys = new RedisKeys(PREFIX);
      const index = await sweepIndexViolations(admin, keys);
      const state = await redisStateViolations(admin, keys);
      console.log(
        `# invariants over Redis: ${state.channels} channels, ${index.checked} with clients`,
      );
      assert.deepEqual([...index.violations, ...state.violations], []);
    } finally {
      admin.disconnect();
    }
  });
});
