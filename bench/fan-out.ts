/**
 * fan-out: N held long polls on one channel in one server process; one enter; how long until every poll
 * has its message (p50/p99/max from the enter) and the server's RSS. Baseline in the same run: the same N
 * requests held by a bare `node:http` server and released by one `EventEmitter` emit.
 *
 * Clients are raw keep-alive sockets in the runner's process (see `raw-client.ts`); the servers run in
 * their own processes, so RSS is the server's alone. Polls are plain long polls (`Dont-Chunk: true`).
 */
import { startServer, type ChildServer } from './lib/child.js';
import {
  connectMany,
  type RawClient,
  type RawResponse,
} from './lib/raw-client.js';
import { benchPrefix, connectRedis, deletePrefix } from './lib/redis.js';
import { fmt, median, nowMs, percentile, ratio } from './lib/stats.js';
import type { Bench, BenchResult, Table } from './lib/types.js';

const WAIT_MS = 60_000;

interface RoundResult {
  p50: number;
  p99: number;
  max: number;
  rssHeld: number;
  /** CPU µs per poll from the enter until every poll had its answer: the server's, then the runner's. */
  serverCpu: number;
  runnerCpu: number;
}

interface TargetResult {
  rounds: RoundResult[];
  /** RSS of the server process when it had just started (RSS rarely shrinks, so this is the floor). */
  rssFresh: number;
}

async function waitUntil(
  check: () => Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what}: not done after ${ms} ms`)),
        ms,
      );
    }),
  ]);
}

/** Runs `rounds` fan-outs of `count` held polls against one server; `presence` picks the protocol. */
async function fanOut(
  server: ChildServer,
  count: number,
  rounds: number,
  presence: boolean,
  nextUser: () => number,
  rssFresh: number,
  /** Given: each round's delivery is CPU-profiled in the server, and the file handed here. */
  profile?: (file: string) => void,
): Promise<TargetResult> {
  const clients: RawClient[] = await connectMany(server.port, count);
  const trigger: RawClient[] = await connectMany(server.port, 1);
  const result: TargetResult = { rounds: [], rssFresh };
  // A channel per size: its backlog starts empty, so id 0 means "hold until the next message".
  const channel = `/bench/fan-${count}`;
  const busChannel = `/presence${channel}`;
  let lastId = 0;
  let early = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      early = 0;
      const body = (i: number): string =>
        presence
          ? `${encodeURIComponent(busChannel)}=${lastId}&__seq=${round + 1}`
          : `client=${i}`;
      const responses: Promise<RawResponse>[] = clients.map((client, i) => {
        const response = client.post(
          presence ? `/message-bus/fan${i}/poll` : '/hold',
          body(i),
          { 'Dont-Chunk': 'true' },
        );
        // A poll answered before the enter was not held: the figures would be meaningless.
        void response.then(
          () => (early += 1),
          () => undefined,
        );
        return response;
      });
      await waitUntil(
        async () => {
          if (early > 0)
            throw new Error(
              `${early} polls were answered before the enter (not held)`,
            );
          return ((await server.stats()).heldPolls ?? 0) >= count;
        },
        30_000,
        `${count} held polls`,
      );
      const held = await server.stats();
      if (profile) await server.profileStart();
      const rssHeld = held.rss;

      const runnerCpu0 = process.cpuUsage();
      const t0 = nowMs();
      early = -Infinity;
      const fired = presence
        ? trigger[0]!.post(
            '/presence/update',
            `client_id=trigger&present_channels%5B%5D=${encodeURIComponent(channel)}`,
            { 'x-bench-user': String(nextUser()) },
          )
        : trigger[0]!.post('/fire', 'go');
      const answers = await withDeadline(
        Promise.all(responses),
        WAIT_MS,
        `delivery to ${count} polls`,
      );
      const triggerAnswer = await fired;
      const runnerCpu = process.cpuUsage(runnerCpu0);
      // Read right after the last answer: includes one stats call, and whatever the server still does
      // for the enter after answering it (nothing much: its message is out).
      const serverCpu = (await server.stats()).cpuMicros - held.cpuMicros;
      if (profile) profile(await server.profileStop());
      if (triggerAnswer.status !== 200)
        throw new Error(
          `trigger answered ${triggerAnswer.status}: ${triggerAnswer.body}`,
        );
      const latencies = answers.map((answer) => answer.at - t0);
      for (const answer of answers) {
        const ok = presence
          ? answer.body.includes('entering_users')
          : answer.body.includes('fired');
        if (answer.status !== 200 || !ok)
          throw new Error(
            `a poll got ${answer.status} ${answer.body.slice(0, 200)}`,
          );
      }
      if (presence) {
        const messages = JSON.parse(answers[0]!.body) as {
          message_id: number;
        }[];
        lastId = messages[messages.length - 1]!.message_id;
      }
      result.rounds.push({
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: percentile(latencies, 100),
        rssHeld,
        serverCpu: serverCpu / count,
        runnerCpu: (runnerCpu.user + runnerCpu.system) / count,
      });
    }
  } finally {
    for (const client of [...clients, ...trigger]) client.close();
  }
  return result;
}

const bench: Bench = {
  name: 'fan-out',
  description:
    'one enter delivered to 1k/5k/10k held long polls vs requests released by an EventEmitter',
  async run(context): Promise<BenchResult> {
    const sizes = context.smoke
      ? { counts: [50], rounds: 1 }
      : { counts: [1000, 5000, 10_000], rounds: 3 };
    const prefix = benchPrefix('fan-out');
    let user = 1;
    const nextUser = (): number => user++;
    const servers: ChildServer[] = [];
    const measured = new Map<string, TargetResult>();
    try {
      // Started together; a failed start still closes the others (finally below).
      const keep = (s: ChildServer): ChildServer => (servers.push(s), s);
      const [baseline, expressBaseline, redisServer, memoryServer] =
        await Promise.all([
          startServer({ kind: 'event-baseline' }).then(keep),
          startServer({ kind: 'event-express' }).then(keep),
          startServer({
            kind: 'fanout',
            store: 'redis',
            redisUrl: context.redisUrl,
            keyPrefix: prefix,
          }).then(keep),
          startServer({ kind: 'fanout', store: 'memory' }).then(keep),
        ]);
      // BENCH_PROFILE_DIR=<dir>: CPU-profile each delivery to the most polls, in every server.
      const profileDir = process.env['BENCH_PROFILE_DIR'];
      const top = sizes.counts[sizes.counts.length - 1];
      const profileOf = (count: number) =>
        profileDir && count === top
          ? (file: string) => context.log(`CPU profile of a delivery: ${file}`)
          : undefined;
      const fresh = new Map<ChildServer, number>();
      for (const server of servers)
        fresh.set(server, (await server.stats()).rss);
      const targets: [string, ChildServer, boolean][] = [
        ['event', baseline, false],
        ['express', expressBaseline, false],
        ['redis', redisServer, true],
        ['memory', memoryServer, true],
      ];
      for (const count of sizes.counts) {
        context.log(`${count} polls`);
        for (const [kind, server, presence] of targets)
          measured.set(
            `${kind}|${count}`,
            await fanOut(
              server,
              count,
              sizes.rounds,
              presence,
              nextUser,
              fresh.get(server)!,
              profileOf(count),
            ),
          );
      }
    } finally {
      await Promise.all(servers.map((s) => s.close()));
      const redis = await connectRedis(context.redisUrl);
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }

    const rows: Table['rows'] = [];
    const figures: Record<string, number> = {};
    const med = (key: string, pick: (r: RoundResult) => number): number =>
      median(measured.get(key)!.rounds.map(pick));
    const labels: Record<string, string> = {
      event: 'baseline: EventEmitter',
      express: 'baseline: EventEmitter behind Express',
      redis: 'message bus, RedisStore',
      memory: 'message bus, MemoryStore',
    };
    for (const count of sizes.counts) {
      const base99 = med(`event|${count}`, (r) => r.p99);
      for (const kind of ['event', 'express', 'redis', 'memory']) {
        const key = `${kind}|${count}`;
        const target = measured.get(key)!;
        const rssHeld = med(key, (r) => r.rssHeld);
        const p99 = med(key, (r) => r.p99);
        figures[`${kind} ${count} p99 ms`] = p99;
        figures[`${kind} ${count} rss`] = rssHeld;
        rows.push([
          labels[kind]!,
          count,
          med(key, (r) => r.p50),
          p99,
          med(key, (r) => r.max),
          `${fmt(ratio(p99, base99))}×`,
          `${fmt(rssHeld / 2 ** 20)} MiB`,
          `${fmt((rssHeld - target.rssFresh) / count / 1024)} KiB`,
          med(key, (r) => r.serverCpu),
          med(key, (r) => r.runnerCpu),
        ]);
        figures[`${kind} ${count} server cpu us/poll`] = med(
          key,
          (r) => r.serverCpu,
        );
      }
    }
    const top = sizes.counts[sizes.counts.length - 1]!;
    const p99 = med(`redis|${top}`, (r) => r.p99);
    const versus = ratio(
      p99,
      med(`event|${top}`, (r) => r.p99),
    );
    return {
      tables: [
        {
          title:
            'One message to N held long polls: ms from the enter until each poll has it (medians of rounds)',
          columns: [
            'server',
            'polls',
            'p50 ms',
            'p99 ms',
            'max ms',
            'p99 × baseline',
            'server RSS held',
            'RSS per poll',
            'server CPU µs/poll',
            'runner CPU µs/poll',
          ],
          rows,
        },
      ],
      targets: [
        {
          what: `fan-out to ${top} held polls (Redis): p99`,
          target: '< 500 ms',
          measured: `${fmt(p99)} ms`,
          met: context.smoke ? null : p99 < 500,
        },
        {
          what: `fan-out to ${top} held polls (Redis) vs in-process event`,
          target: '≤ 1.3× baseline p99 (issue 17)',
          measured: `${fmt(versus)}×`,
          met: context.smoke ? null : versus <= 1.3,
        },
        {
          what: `where the time goes at ${top} polls (p99, server CPU per poll)`,
          target: 'informational',
          measured: [
            `Express alone ${fmt(
              ratio(
                med(`express|${top}`, (r) => r.p99),
                med(`event|${top}`, (r) => r.p99),
              ),
            )}× the bare baseline (${fmt(med(`express|${top}`, (r) => r.serverCpu))} vs ${fmt(med(`event|${top}`, (r) => r.serverCpu))} µs)`,
            `the bus on the memory store ${fmt(
              ratio(
                med(`memory|${top}`, (r) => r.p99),
                med(`express|${top}`, (r) => r.p99),
              ),
            )}× the Express baseline (${fmt(med(`memory|${top}`, (r) => r.serverCpu))} µs)`,
            `the Redis hop ${fmt(
              ratio(
                p99,
                med(`memory|${top}`, (r) => r.p99),
              ),
            )}× the memory store (${fmt(med(`redis|${top}`, (r) => r.serverCpu))} µs)`,
          ].join('; '),
          met: null,
        },
      ],
      notes: [
        `${sizes.rounds} rounds per size; the enter is a real POST /presence/update on its own connection, timed from just before it is written; the server is the real createApp with maxHeldPolls raised to 20,000 (default 1,000 per process).`,
        'RSS per poll = (RSS with the polls held − RSS of the freshly started server) / polls: socket, request/response objects, watch, timer (an upper bound for the smaller sizes, which run first).',
        'CPU µs/poll = CPU (user + system) from the enter until every poll had its answer, divided by the polls: the server process\'s (read by an IPC stats call right after the last answer; it includes the enter itself and, on Redis, the pub/sub hop) and the runner\'s, which parses every answer (its cost grows with the answer\'s bytes: the bus answers with its no-cache headers and the enter message, the baselines with the same headers and `[{"fired":"go"}]`).',
        "Baselines: one EventEmitter listener answers every held request in one pass, in a bare `node:http` server and behind Express (the same handler as the app's only middleware). Express switches the prototype of every request's `req` and `res` to its own; V8 then handles every property the answer writes on those `res` objects on a slow path, which is what the second baseline measures.",
      ],
      figures,
    };
  },
};

export default bench;
