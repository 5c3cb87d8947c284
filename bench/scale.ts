/**
 * scale (issue 17, item 6): a million present clients on a 3-master Redis Cluster, next to the same load
 * on one Redis in the same run (cluster first, then the single Redis; each on servers this bench starts
 * on loopback and stops afterwards, which deletes everything it wrote — never the shared 6379).
 *
 * For each deployment, through the real RedisStore (auto-pipelined connection, as the server's), with
 * every channel's bus channel subscribed as a server with held polls everywhere has it:
 * 1. load: 200,000 users × 5 channels over 10,000 channels (100 users each), one 32-hex client id per
 *    user and realistic profiles; load time, and Redis bytes per client from the INFO `used_memory` Δ
 *    summed over the masters;
 * 2. for `--duration` (default 2 min): enters on a clock into channels the user is not in, half of them
 *    left again some seconds later and half never heard of again (a closed tab, with a short timeout);
 *    the server's own sweeper (PresenceCore, every 5 s), whose leave messages the subscriber times (sweep
 *    lag = message received − the client's expiry); and heartbeats of random loaded clients — for the
 *    first 40 % from a pool of workers as fast as the machine goes (the rate it sustains, against the
 *    33,333/s a million clients on a 30 s heartbeat need), then on a clock at half that rate, where
 *    enter, heartbeat and leave latencies are read (at saturation they only measure the queue);
 * 3. a drain: the sweeper runs on until every vanished client's leave arrived (bounded), then the store
 *    closes and the servers stop.
 *
 * Memory stays bounded whatever the size: latencies are reservoir samples, the operations in flight are a
 * fixed pool, the client ids one buffer of 16 bytes per user.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';

import { Cluster, Redis } from 'ioredis';

import { presenceBusChannel } from '../server/src/core/bus-messages.js';
import {
  DEFAULT_SWEEP_INTERVAL_MS,
  PresenceCore,
} from '../server/src/core/presence.js';
import type {
  PresenceResult,
  PublishRules,
  SweepResult,
} from '../server/src/core/store.js';
import type { BusMessage } from '../server/src/core/types.js';
import {
  RedisStore,
  type RedisConnection,
} from '../server/src/store/redis-store.js';
import { ScratchRedis } from '../server/test/support/http-redis-server.js';
import { startRedisCluster } from '../server/test/support/redis-cluster.js';
import { runConcurrent } from './lib/load.js';
import {
  BENCH_REDIS_OPTIONS,
  benchPrefix,
  usedMemory,
  waitForLazyFree,
} from './lib/redis.js';
import { Reservoir, fmt, nowMs, ratio } from './lib/stats.js';
import type {
  Bench,
  BenchContext,
  BenchResult,
  Table,
  TargetCheck,
} from './lib/types.js';
import { benchUserById } from './lib/users.js';

const RULES: PublishRules = { countOnly: false, audience: {} };

/** A million clients on the addon's 30 s heartbeat (`heartbeatMs`) need this many presents a second. */
const NEEDED_HEARTBEATS_PER_S = 1_000_000 / 30;

/** Discourse's bytes per present client (backlog included): the reference of issue 17, item 1. */
const REFERENCE_BYTES_PER_CLIENT = 493;

/**
 * Loopback ports of the bench's cluster: not the test cluster's 7101–7103, so a test run and a bench
 * run never share (or stop) each other's nodes.
 */
const CLUSTER_PORTS: readonly number[] = (
  process.env['BENCH_SCALE_CLUSTER_PORTS'] ?? '7201,7202,7203'
)
  .split(',')
  .map(Number);

/**
 * Loaded clients outlive the bench: one machine heartbeats a million clients far less often than every
 * 30 s, and a loaded client that expired would turn the sweep and the memory figures into a measure of
 * mass expiry. Their heartbeats are still real presents (the same script, a renewed expiry).
 */
const LOADED_TIMEOUT_MS = 30 * 60_000;

/**
 * A full load that has not finished after this long fails: it took 5 minutes on 2 cores shared with
 * other work, and a bench that gives up after 10 minutes of loading would have measured nothing.
 */
const LOAD_MAX_MS = 900_000;

/** Enters and leaves in flight at most; beyond it an enter is skipped (and counted) rather than queued. */
const MAX_CHURN_IN_FLIGHT = 1000;

/** Heartbeats issued on the clock in flight at most (the same rule). */
const MAX_HEARTBEATS_IN_FLIGHT = 2000;

/** The first part of the timed phase, in which heartbeats go as fast as they can. */
const SATURATED_SHARE = 0.4;

/**
 * The heartbeat rate of the second part, as a share of the first part's: busy, with headroom for the
 * bursts of the machine's other users (it is shared), so that latencies measure the store rather than
 * a queue that grows whenever a neighbour takes a core.
 */
const LOADED_SHARE = 0.5;

interface Sizes {
  users: number;
  channels: number;
  channelsPerUser: number;
  loadConcurrency: number;
  heartbeatConcurrency: number;
  durationMs: number;
  /** Enters a second; every other one vanishes, the rest are left after `leaveAfterMs`. */
  enterRate: number;
  leaveAfterMs: number;
  /** The short timeout of the clients that vanish. */
  vanishTimeoutMs: number;
  sweepIntervalMs: number;
  progressEveryMs: number;
}

function sizesFor(context: BenchContext): Sizes {
  const common = { channelsPerUser: 5 };
  if (context.smoke) {
    // The shape of the full run (100 users a channel, 5 channels a user) at 10,000 clients. A 1 s sweep
    // interval and timeout keep the drain short: the smoke checks the mechanism, not the figures.
    const durationMs = context.durationMs ?? 8000;
    return {
      ...common,
      users: 2000,
      channels: 100,
      loadConcurrency: 50,
      heartbeatConcurrency: 16,
      durationMs,
      enterRate: 100,
      leaveAfterMs: Math.min(20_000, durationMs / 4),
      vanishTimeoutMs: 1000,
      sweepIntervalMs: 1000,
      progressEveryMs: 4000,
    };
  }
  const durationMs = context.durationMs ?? 120_000;
  return {
    ...common,
    users: 200_000,
    channels: 10_000,
    loadConcurrency: 200,
    // Enough in flight for auto-pipelining to batch, as a busy server's concurrent requests do.
    heartbeatConcurrency: 64,
    durationMs,
    // About one enter per loaded client every 30 minutes, half of them tabs that vanish: each sweep
    // pass has hundreds of expiries.
    enterRate: 500,
    leaveAfterMs: Math.min(20_000, durationMs / 4),
    vanishTimeoutMs: 15_000,
    sweepIntervalMs: DEFAULT_SWEEP_INTERVAL_MS,
    progressEveryMs: 10_000,
  };
}

/** One deployment under test: a connection to it and its master nodes (for INFO). */
interface Deployment {
  name: string;
  connection: RedisConnection;
  masters: Redis[];
  /** Of the redis-server processes. */
  pids: number[];
  /** Closes the connection and stops the servers (their data goes with them). */
  stop(): Promise<void>;
}

async function serverPid(node: Redis): Promise<number> {
  const info = await node.info('server');
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

/**
 * A deployment on `connection` once it answers, with its masters and their pids; on a failure the
 * connection is closed and `stopServers` runs.
 */
async function connectDeployment(
  name: string,
  connection: RedisConnection,
  expectedMasters: number,
  stopServers: () => Promise<void>,
): Promise<Deployment> {
  const stop = async (): Promise<void> => {
    connection.disconnect();
    await stopServers();
  };
  try {
    await connection.ping();
    const masters =
      connection instanceof Cluster ? connection.nodes('master') : [connection];
    if (masters.length !== expectedMasters)
      throw new Error(
        `${name} reports ${masters.length} masters, expected ${expectedMasters}`,
      );
    const pids = await Promise.all(masters.map(serverPid));
    return { name, connection, masters, pids, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startCluster(): Promise<Deployment> {
  const cluster = await startRedisCluster(CLUSTER_PORTS);
  if (!cluster.started) {
    throw new Error(
      `a Redis Cluster already answers on ports ${CLUSTER_PORTS.join(', ')} (left by a killed run?): ` +
        'stop it (redis-cli -p <port> shutdown nosave) or pick others with BENCH_SCALE_CLUSTER_PORTS=a,b,c',
    );
  }
  const connection = new Cluster(cluster.nodes, {
    redisOptions: { ...BENCH_REDIS_OPTIONS, lazyConnect: false },
    clusterRetryStrategy: () => null,
    enableAutoPipelining: true,
  });
  return connectDeployment(
    `cluster (${CLUSTER_PORTS.length} masters)`,
    connection,
    CLUSTER_PORTS.length,
    () => cluster.stop(),
  );
}

async function startSingle(): Promise<Deployment> {
  const server = await ScratchRedis.start();
  const connection = new Redis(server.url, {
    ...BENCH_REDIS_OPTIONS,
    lazyConnect: false,
    enableAutoPipelining: true,
  });
  return connectDeployment('single Redis', connection, 1, () =>
    server.destroy(),
  );
}

/**
 * Stops the servers of this run if the process is told to end first (Ctrl-C, SIGTERM), servers still
 * starting included, and SIGKILLs them on any other early exit (a crash, the runner's time limit): a
 * million clients hold hundreds of megabytes of a shared machine's RAM.
 */
class ServerGuard {
  readonly #deployments = new Set<Promise<Deployment>>();
  readonly #pids = new Set<number>();
  readonly #kill = (): void => {
    for (const pid of this.#pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  };
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    // Stopping also removes the servers' directories; bounded, as a start may hang.
    setTimeout(() => process.exit(code), 25_000).unref();
    void Promise.allSettled(
      [...this.#deployments].map(async (starting) => (await starting).stop()),
    ).finally(() => process.exit(code));
  };

  constructor() {
    process.once('exit', this.#kill);
    process.once('SIGINT', this.#onSignal);
    process.once('SIGTERM', this.#onSignal);
  }

  /** Starts a deployment (a failed start stops what it started itself). */
  async start(start: () => Promise<Deployment>): Promise<Deployment> {
    const starting = start();
    this.#deployments.add(starting);
    try {
      const deployment = await starting;
      for (const pid of deployment.pids) this.#pids.add(pid);
      return deployment;
    } catch (error) {
      this.#deployments.delete(starting);
      throw error;
    }
  }

  async stop(deployment: Deployment): Promise<void> {
    await deployment.stop();
    for (const pid of deployment.pids) this.#pids.delete(pid);
    for (const starting of this.#deployments) {
      if ((await starting) === deployment) this.#deployments.delete(starting);
    }
  }

  /** Removes the hooks (every deployment stopped). */
  dispose(): void {
    process.off('exit', this.#kill);
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
  }
}

/** Seconds of CPU every master used so far (INFO cpu, user + sys). */
async function redisCpuSeconds(masters: readonly Redis[]): Promise<number> {
  const infos = await Promise.all(masters.map((node) => node.info('cpu')));
  return infos.reduce(
    (sum, info) =>
      sum +
      Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? Number.NaN) +
      Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? Number.NaN),
    0,
  );
}

async function totalUsedMemory(masters: readonly Redis[]): Promise<number> {
  await Promise.all(masters.map((node) => waitForLazyFree(node)));
  const used = await Promise.all(masters.map((node) => usedMemory(node)));
  return used.reduce((a, b) => a + b, 0);
}

/** The RedisStore, timing each sweep the PresenceCore sweeper runs on it. */
class TimedSweepStore extends RedisStore {
  readonly sweeps: { ms: number; expired: number; messages: number }[] = [];
  /** Sweeps started so far, and whether one runs now: which enters overlapped one. */
  sweepsStarted = 0;
  sweeping = false;

  override async sweep(now: number): Promise<SweepResult> {
    this.sweepsStarted += 1;
    this.sweeping = true;
    const started = nowMs();
    try {
      const result = await super.sweep(now);
      this.sweeps.push({
        ms: nowMs() - started,
        expired: result.expiredClients,
        messages: result.messages.length,
      });
      return result;
    } finally {
      this.sweeping = false;
    }
  }
}

/**
 * Operations issued on a clock, `rate` a second, however long each takes (an open loop: a stall shows in
 * the latencies instead of slowing the issuing down), at most `maxInFlight` at once — beyond it an
 * operation is skipped and counted, so memory stays bounded when the machine cannot keep up.
 */
class OpenLoop {
  /** Operations not issued because `maxInFlight` were in flight (or the operation gave up itself). */
  skipped = 0;
  readonly #rate: number;
  readonly #maxInFlight: number;
  readonly #op: (n: number) => Promise<void>;
  readonly #onError: (error: unknown) => void;
  readonly #started = nowMs();
  readonly #inFlight = new Set<Promise<void>>();
  #issued = 0;

  constructor(
    rate: number,
    maxInFlight: number,
    op: (n: number) => Promise<void>,
    onError: (error: unknown) => void,
  ) {
    this.#rate = rate;
    this.#maxInFlight = maxInFlight;
    this.#op = op;
    this.#onError = onError;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Issues every operation due by now, however late the timer calling this fired. */
  tick(): void {
    const due =
      Math.floor(((nowMs() - this.#started) * this.#rate) / 1000) -
      this.#issued;
    for (let n = 0; n < due; n++) {
      this.#issued += 1;
      if (this.#inFlight.size >= this.#maxInFlight) this.skipped += 1;
      else this.track(this.#op(this.#issued));
    }
  }

  /** Counts another operation as in flight (and reports its error) until it settles. */
  track(operation: Promise<void>): void {
    const tracked = operation
      .catch(this.#onError)
      .finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  /** Resolves when everything issued so far has settled. */
  async settle(): Promise<void> {
    await Promise.all(this.#inFlight);
  }
}

/** Latencies (ms) of the operations issued during one part of the timed phase. */
interface Latencies {
  heartbeats: Reservoir;
  enters: Reservoir;
  leaves: Reservoir;
  /** Enters that overlapped a sweep (one ran when they were issued, or one started before they ended). */
  entersBesideSweep: Reservoir;
  entersWithoutSweep: Reservoir;
}

function newLatencies(): Latencies {
  return {
    heartbeats: new Reservoir(),
    enters: new Reservoir(),
    leaves: new Reservoir(),
    entersBesideSweep: new Reservoir(),
    entersWithoutSweep: new Reservoir(),
  };
}

/** What one deployment measured. */
interface Measured {
  clients: number;
  loadS: number;
  loadPerS: number;
  bytesPerClient: number;
  /** While the worker pool heartbeats as fast as it can. */
  saturated: Latencies;
  /** While heartbeats are issued on a clock at LOADED_SHARE of the saturated rate. */
  loaded: Latencies;
  saturatedPerS: number;
  loadedPerS: number;
  heartbeatsSkipped: number;
  churnSkipped: number;
  /** Expiry → leave message received, ms. */
  sweepLag: Reservoir;
  vanished: number;
  /** Vanished clients whose leave never arrived within the drain. */
  unobserved: number;
  sweeps: number;
  slowestSweepMs: number;
  mostExpiredInASweep: number;
  expiredBySweeps: number;
  /** Cores busy at saturation (CPU seconds per second). */
  nodeCores: number;
  redisCores: number;
  /** Heartbeats, enters and leaves a second at saturation. */
  operationsPerS: number;
  published: number;
  received: number;
  /** The 1-minute load average when the timed phase began (the machine is shared). */
  loadAverage: number;
}

/** Polls `done` every 50 ms until it holds or `maxMs` passed; returns whether it held. */
async function waitFor(done: () => boolean, maxMs: number): Promise<boolean> {
  const deadline = nowMs() + maxMs;
  while (!done()) {
    if (nowMs() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

async function measure(
  deployment: Deployment,
  sizes: Sizes,
  context: BenchContext,
): Promise<Measured> {
  const { users, channels, channelsPerUser } = sizes;
  const log = (line: string): void =>
    context.log(`${deployment.name}: ${line}`);
  const clients = users * channelsPerUser;
  const groups = channels / channelsPerUser;
  const channelNames = Array.from(
    { length: channels },
    (_, c) => `/scale/${c}`,
  );
  const busNames = channelNames.map(presenceBusChannel);
  // Each user is in the `channelsPerUser` consecutive channels of group (user mod groups), with one
  // client id (a tab in several channels); every channel holds users / groups distinct users.
  const channelOf = (user: number, k: number): number =>
    (user % groups) * channelsPerUser + k;
  const clientIds = randomBytes(16 * users);
  const clientIdOf = (user: number): string =>
    clientIds.toString('hex', user * 16, user * 16 + 16);

  const store = new TimedSweepStore(deployment.connection, {
    keyPrefix: benchPrefix('scale'),
  });
  /**
   * A present of loaded client i: user i mod users in the (i div users)-th of its channels (its enter
   * during the load, a heartbeat afterwards).
   */
  const presentLoaded = (i: number): Promise<PresenceResult> => {
    const user = i % users;
    return store.present(
      channelNames[channelOf(user, Math.floor(i / users))]!,
      benchUserById(user + 1),
      clientIdOf(user),
      LOADED_TIMEOUT_MS,
      RULES,
      Date.now(),
    );
  };
  let published = 0;
  let received = 0;
  /** `${bus channel}\n${user id}` of the vanished clients whose leave is awaited → their expiry (ms). */
  const vanishing = new Map<string, number>();
  const sweepLag = new Reservoir();
  const listener = (message: BusMessage): void => {
    received += 1;
    const data = message.data as { leaving_user_ids?: number[] };
    if (!data.leaving_user_ids) return;
    const at = Date.now();
    for (const id of data.leaving_user_ids) {
      const key = `${message.channel}\n${id}`;
      const expiry = vanishing.get(key);
      if (expiry === undefined) continue;
      sweepLag.add(at - expiry);
      vanishing.delete(key);
      active.delete(key);
    }
  };
  /** Pairs entered by the churn and not gone yet, so a pick never lands on one. */
  const active = new Set<string>();

  const core = new PresenceCore({
    store,
    sweepIntervalMs: sizes.sweepIntervalMs,
  });
  try {
    log(`subscribing to ${fmt(channels)} bus channels`);
    const unsubscribe = await store.subscribe(busNames, listener);
    const memoryBefore = await totalUsedMemory(deployment.masters);

    // 1. Load, in the order of `presentLoaded`: the first pass enters every user once, and channels
    // fill evenly.
    log(`loading ${fmt(clients)} clients`);
    const progressEvery = Math.max(1, Math.round(clients / 10));
    const loadStarted = nowMs();
    const load = await runConcurrent(
      async (i) => {
        const result = await presentLoaded(i);
        if (!result.changed)
          throw new Error(`loaded client ${i} was present already`);
        published += 1;
        if ((i + 1) % progressEvery === 0)
          log(
            `loaded ${fmt(i + 1)} (${fmt(((i + 1) / (nowMs() - loadStarted)) * 1000)}/s)`,
          );
      },
      {
        total: clients,
        concurrency: sizes.loadConcurrency,
        maxMs: context.smoke ? 60_000 : LOAD_MAX_MS,
      },
    );
    if (load.ops !== clients)
      throw new Error(
        `loading stopped at ${fmt(load.ops)} of ${fmt(clients)} clients (time limit)`,
      );
    // Change messages still on their way would sit in output buffers and count as memory.
    await waitFor(() => received >= published, 10_000);
    const bytesPerClient =
      ((await totalUsedMemory(deployment.masters)) - memoryBefore) / clients;
    log(
      `loaded in ${fmt(load.elapsedMs / 1000)} s; ${fmt(bytesPerClient)} B/client`,
    );

    // 2. The timed phase, in two parts under the same churn and sweeper. First a pool of workers
    // heartbeats as fast as it goes: the rate this machine sustains. Then heartbeats are issued on a
    // clock at LOADED_SHARE of that rate, where latencies mean something: at saturation every call waits
    // behind the pool (in flight ÷ rate) whatever the store costs, and a closed pool hides a stall
    // (its workers stop issuing while they wait).
    const latencies = { saturated: newLatencies(), loaded: newLatencies() };
    let part: keyof typeof latencies = 'saturated';
    /** The first error of any operation: everything stops issuing, and the phase throws it. */
    const outcome: { failure: Error | null } = { failure: null };
    const fail = (error: unknown): void => {
      outcome.failure ??=
        error instanceof Error ? error : new Error(String(error));
    };
    const leavers: {
      channel: number;
      user: number;
      clientId: string;
      key: string;
      enteredAt: number;
    }[] = [];
    let leaversHead = 0;
    let vanished = 0;

    const heartbeat = async (): Promise<void> => {
      const into = latencies[part];
      const i = Math.floor(Math.random() * clients);
      const started = nowMs();
      const result = await presentLoaded(i);
      into.heartbeats.add(nowMs() - started);
      if (result.changed)
        throw new Error(
          `a heartbeat of loaded client ${i} entered it again: it had expired`,
        );
    };
    /** The n-th enter of the churn: every other one vanishes, the rest are left later. */
    const enter = async (n: number): Promise<void> => {
      const vanish = n % 2 === 0;
      let user = 0;
      let channel = 0;
      let key = '';
      for (let attempt = 0; attempt < 10; attempt++) {
        user = Math.floor(Math.random() * users);
        // Any channel outside the user's own group, so the user is not in it yet.
        channel =
          ((user % groups) * channelsPerUser +
            channelsPerUser +
            Math.floor(Math.random() * (channels - channelsPerUser))) %
          channels;
        key = `${busNames[channel]!}\n${user + 1}`;
        if (!active.has(key)) break;
      }
      if (active.has(key)) {
        churn.skipped += 1;
        return;
      }
      active.add(key);
      const into = latencies[part];
      const clientId = randomBytes(16).toString('hex');
      const now = Date.now();
      const timeout = vanish ? sizes.vanishTimeoutMs : LOADED_TIMEOUT_MS;
      if (vanish) vanishing.set(key, now + timeout);
      const sweepsBefore = store.sweepsStarted;
      const besideSweep = store.sweeping;
      const started = nowMs();
      const result = await store.present(
        channelNames[channel]!,
        benchUserById(user + 1),
        clientId,
        timeout,
        RULES,
        now,
      );
      const ms = nowMs() - started;
      into.enters.add(ms);
      (besideSweep || store.sweepsStarted !== sweepsBefore
        ? into.entersBesideSweep
        : into.entersWithoutSweep
      ).add(ms);
      if (!result.changed)
        throw new Error(
          `the enter of user ${user + 1} in ${channelNames[channel]} changed nothing`,
        );
      published += 1;
      if (vanish) vanished += 1;
      else
        leavers.push({ channel, user, clientId, key, enteredAt: Date.now() });
    };
    const leave = async (leaver: (typeof leavers)[number]): Promise<void> => {
      const into = latencies[part];
      const started = nowMs();
      const result = await store.leave(
        channelNames[leaver.channel]!,
        leaver.user + 1,
        leaver.clientId,
        RULES,
        Date.now(),
      );
      into.leaves.add(nowMs() - started);
      if (!result.changed)
        throw new Error(`the leave of user ${leaver.user + 1} changed nothing`);
      published += 1;
      active.delete(leaver.key);
    };

    log(
      `${fmt(sizes.durationMs / 1000)} s: ${sizes.enterRate} enters/s and the sweeper every ` +
        `${fmt(sizes.sweepIntervalMs / 1000)} s throughout; heartbeats from ${sizes.heartbeatConcurrency} ` +
        `workers for ${fmt((sizes.durationMs * SATURATED_SHARE) / 1000)} s, then on a clock at ${LOADED_SHARE}× their rate`,
    );
    const cpuBefore = process.cpuUsage();
    const redisCpuBefore = await redisCpuSeconds(deployment.masters);
    const loadAverage = os.loadavg()[0]!;
    const started = nowMs();
    const saturatedUntil = started + sizes.durationMs * SATURATED_SHARE;
    const deadline = started + sizes.durationMs;
    const churn = new OpenLoop(
      sizes.enterRate,
      MAX_CHURN_IN_FLIGHT,
      enter,
      fail,
    );
    let heartbeatLoop: OpenLoop | null = null;
    core.startSweeper();
    const timer = setInterval(() => {
      if (outcome.failure !== null) return;
      churn.tick();
      heartbeatLoop?.tick();
      const leaveBefore = Date.now() - sizes.leaveAfterMs;
      while (
        leaversHead < leavers.length &&
        leavers[leaversHead]!.enteredAt <= leaveBefore &&
        churn.inFlight < MAX_CHURN_IN_FLIGHT
      ) {
        churn.track(leave(leavers[leaversHead++]!));
      }
      if (leaversHead > 10_000) {
        leavers.splice(0, leaversHead);
        leaversHead = 0;
      }
    }, 10);
    let lastReport = { at: started, heartbeats: 0 };
    const heartbeatCount = (): number =>
      latencies.saturated.heartbeats.count + latencies.loaded.heartbeats.count;
    const progressTimer = setInterval(() => {
      const at = nowMs();
      const count = heartbeatCount();
      log(
        `${fmt((at - started) / 1000)} s (${part}): ${fmt(((count - lastReport.heartbeats) / (at - lastReport.at)) * 1000)} heartbeats/s, ` +
          `${fmt(store.sweeps.length)} sweeps, ${fmt(vanishing.size)} leaves awaited`,
      );
      lastReport = { at, heartbeats: count };
    }, sizes.progressEveryMs);
    try {
      await Promise.all(
        Array.from({ length: sizes.heartbeatConcurrency }, async () => {
          while (outcome.failure === null && nowMs() < saturatedUntil)
            await heartbeat().catch(fail);
        }),
      );
      const saturatedS = (nowMs() - started) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      const redisCores =
        ((await redisCpuSeconds(deployment.masters)) - redisCpuBefore) /
        saturatedS;
      const saturatedPerS = latencies.saturated.heartbeats.count / saturatedS;
      const operationsPerS =
        (latencies.saturated.heartbeats.count +
          latencies.saturated.enters.count +
          latencies.saturated.leaves.count) /
        saturatedS;

      part = 'loaded';
      const loadedStarted = nowMs();
      heartbeatLoop = new OpenLoop(
        LOADED_SHARE * saturatedPerS,
        MAX_HEARTBEATS_IN_FLIGHT,
        heartbeat,
        fail,
      );
      log(
        `${fmt(saturatedPerS)} heartbeats/s at saturation; now ${fmt(LOADED_SHARE * saturatedPerS)}/s on a clock`,
      );
      await waitFor(
        () => outcome.failure !== null || nowMs() >= deadline,
        sizes.durationMs + 1000,
      );
      clearInterval(timer);
      clearInterval(progressTimer);
      await Promise.all([churn.settle(), heartbeatLoop.settle()]);
      if (outcome.failure !== null) throw outcome.failure;
      const loadedPerS =
        latencies.loaded.heartbeats.count / ((deadline - loadedStarted) / 1000);

      // 3. Drain: the sweeper goes on until every vanished client's leave arrived.
      const drainMs =
        sizes.vanishTimeoutMs + 2 * sizes.sweepIntervalMs + 10_000;
      log(
        `draining: ${fmt(vanishing.size)} leaves awaited (at most ${fmt(drainMs / 1000)} s)`,
      );
      const drainStarted = nowMs();
      await waitFor(() => vanishing.size === 0, drainMs);
      await core.stop();
      await waitFor(() => received >= published, 5000);
      log(`drained in ${fmt((nowMs() - drainStarted) / 1000)} s`);
      await unsubscribe();

      const sweeps = store.sweeps;
      return {
        clients,
        loadS: load.elapsedMs / 1000,
        loadPerS: load.opsPerSec,
        bytesPerClient,
        saturated: latencies.saturated,
        loaded: latencies.loaded,
        saturatedPerS,
        loadedPerS,
        heartbeatsSkipped: heartbeatLoop.skipped,
        churnSkipped: churn.skipped,
        sweepLag,
        vanished,
        unobserved: vanishing.size,
        sweeps: sweeps.length,
        slowestSweepMs: Math.max(0, ...sweeps.map((s) => s.ms)),
        mostExpiredInASweep: Math.max(0, ...sweeps.map((s) => s.expired)),
        expiredBySweeps: sweeps.reduce((sum, s) => sum + s.expired, 0),
        nodeCores: (cpu.user + cpu.system) / 1e6 / saturatedS,
        redisCores,
        operationsPerS,
        published:
          published + sweeps.reduce((sum, sweep) => sum + sweep.messages, 0),
        received,
        loadAverage,
      };
    } finally {
      clearInterval(timer);
      clearInterval(progressTimer);
    }
  } finally {
    await core.stop();
    await store.close();
  }
}

const bench: Bench = {
  name: 'scale',
  description:
    'a million present clients on a 3-master Redis Cluster and on one Redis: load, heartbeats, churn, sweep lag, memory',
  optIn: true,
  // A backstop only (every phase has its own bound): two loads, two timed phases and their drains.
  timeoutMs: (context) =>
    context.smoke
      ? 150_000
      : 2 * (LOAD_MAX_MS + sizesFor(context).durationMs + 120_000),
  async run(context): Promise<BenchResult> {
    const sizes = sizesFor(context);
    const measured: Measured[] = [];
    const names: string[] = [];
    const guard = new ServerGuard();
    try {
      for (const start of [startCluster, startSingle]) {
        const deployment = await guard.start(start);
        try {
          names.push(deployment.name);
          measured.push(await measure(deployment, sizes, context));
        } finally {
          await guard.stop(deployment);
        }
      }
    } finally {
      guard.dispose();
    }
    const [cluster, single] = measured as [Measured, Measured];

    const timeoutS = sizes.vanishTimeoutMs / 1000;
    const row = (
      label: string,
      pick: (m: Measured) => number,
    ): Table['rows'][number] => [
      label,
      pick(cluster),
      pick(single),
      `${fmt(ratio(pick(cluster), pick(single)))}×`,
    ];
    const section = (title: string): Table['rows'][number] => [
      `**${title}**`,
      '',
      '',
      '',
    ];
    const percentiles = (
      what: string,
      pick: (m: Measured) => Reservoir,
    ): Table['rows'] => [
      row(`${what} p50, ms`, (m) => pick(m).percentile(50)),
      row(`${what} p99, ms`, (m) => pick(m).percentile(99)),
    ];
    const at = `at ${LOADED_SHARE}× the saturated rate (heartbeats on a clock)`;
    const table: Table = {
      title: `${fmt(cluster.clients)} present clients (${fmt(sizes.users)} users × ${sizes.channelsPerUser} channels over ${fmt(sizes.channels)} channels), ${fmt(sizes.durationMs / 1000)} s of load`,
      columns: ['figure', names[0]!, names[1]!, 'cluster ÷ single'],
      rows: [
        row('load time, s', (m) => m.loadS),
        row('load, clients/s', (m) => m.loadPerS),
        row(
          'Redis bytes per client (INFO Δ, all masters)',
          (m) => m.bytesPerClient,
        ),
        section(
          `at saturation (${sizes.heartbeatConcurrency} heartbeats in flight)`,
        ),
        row('heartbeats/s', (m) => m.saturatedPerS),
        row(
          `heartbeats/s ÷ ${fmt(NEEDED_HEARTBEATS_PER_S)}/s (1M clients, 30 s)`,
          (m) => m.saturatedPerS / NEEDED_HEARTBEATS_PER_S,
        ),
        ...percentiles('heartbeat', (m) => m.saturated.heartbeats),
        ...percentiles('enter', (m) => m.saturated.enters),
        row('Node CPU, cores busy', (m) => m.nodeCores),
        row('Redis CPU, cores busy (all masters)', (m) => m.redisCores),
        // Per store call (heartbeats, enters, leaves; the sweeps' CPU included): what a capacity plan
        // multiplies.
        row(
          'Node CPU µs per operation',
          (m) => (m.nodeCores * 1e6) / m.operationsPerS,
        ),
        row(
          'Redis CPU µs per operation',
          (m) => (m.redisCores * 1e6) / m.operationsPerS,
        ),
        section(`${at}`),
        row('heartbeats/s', (m) => m.loadedPerS),
        ...percentiles('heartbeat', (m) => m.loaded.heartbeats),
        ...percentiles('enter', (m) => m.loaded.enters),
        row('enter p99 with no sweep running, ms', (m) =>
          m.loaded.entersWithoutSweep.percentile(99),
        ),
        row('enter p99 overlapping a sweep, ms', (m) =>
          m.loaded.entersBesideSweep.percentile(99),
        ),
        ...percentiles('leave', (m) => m.loaded.leaves),
        section(
          `the sweeper (every ${fmt(sizes.sweepIntervalMs / 1000)} s, throughout)`,
        ),
        row(
          'sweep lag p50 (expiry → leave message), s',
          (m) => m.sweepLag.percentile(50) / 1000,
        ),
        row('sweep lag p99, s', (m) => m.sweepLag.percentile(99) / 1000),
        row('slowest sweep, ms', (m) => m.slowestSweepMs),
        row('most clients expired by one sweep', (m) => m.mostExpiredInASweep),
      ],
    };
    const counts: Table = {
      title: 'operations counted',
      columns: [
        'deployment',
        'load avg (1 min)',
        'heartbeats',
        'heartbeats skipped',
        'enters',
        'enters skipped',
        'leaves',
        'vanished',
        'leave never seen',
        'sweeps',
        'expired by sweeps',
        'messages published',
        'messages received',
      ],
      rows: measured.map((m, i) => [
        names[i]!,
        m.loadAverage,
        m.saturated.heartbeats.count + m.loaded.heartbeats.count,
        m.heartbeatsSkipped,
        m.saturated.enters.count + m.loaded.enters.count,
        m.churnSkipped,
        m.saturated.leaves.count + m.loaded.leaves.count,
        m.vanished,
        m.unobserved,
        m.sweeps,
        m.expiredBySweeps,
        m.published,
        m.received,
      ]),
    };

    const targets: TargetCheck[] = [];
    const figures: Record<string, number> = {};
    measured.forEach((m, i) => {
      const name = names[i]!;
      const enterP99 = m.loaded.enters.percentile(99);
      const lagP99S = m.sweepLag.percentile(99) / 1000;
      targets.push(
        {
          what: `${name}: enter p99 ${at}`,
          target: '< 10 ms',
          measured: `${fmt(enterP99)} ms (with no sweep running ${fmt(m.loaded.entersWithoutSweep.percentile(99))} ms; at saturation ${fmt(m.saturated.enters.percentile(99))} ms)`,
          met: context.smoke ? null : enterP99 < 10,
        },
        {
          what: `${name}: vanished client → leave message, p99`,
          target: `< timeout + 10 s = ${fmt(timeoutS + 10)} s`,
          measured: `${fmt(timeoutS + lagP99S)} s (lag after expiry ${fmt(lagP99S)} s; ${fmt(m.unobserved)} never seen)`,
          met: context.smoke ? null : lagP99S < 10 && m.unobserved === 0,
        },
        {
          what: `${name}: Redis bytes per present client`,
          target: `≤ ${REFERENCE_BYTES_PER_CLIENT} B (Discourse, issue 17 item 1)`,
          measured: `${fmt(m.bytesPerClient)} B`,
          met: context.smoke
            ? null
            : m.bytesPerClient <= REFERENCE_BYTES_PER_CLIENT,
        },
        {
          what: `${name}: heartbeats one process sustains`,
          target: `${fmt(NEEDED_HEARTBEATS_PER_S)}/s for 1M clients (informational)`,
          measured: `${fmt(m.saturatedPerS)}/s = ${fmt(m.saturatedPerS / NEEDED_HEARTBEATS_PER_S)}×`,
          met: null,
        },
        {
          what: `${name}: every change message reached the subscriber`,
          target: `${fmt(m.published)} received`,
          measured: `${fmt(m.received)} received`,
          met: m.received === m.published,
        },
      );
      figures[`${name} load clients/s`] = m.loadPerS;
      figures[`${name} bytes/client`] = m.bytesPerClient;
      figures[`${name} heartbeats/s at saturation`] = m.saturatedPerS;
      figures[`${name} heartbeat p99 ms`] = m.loaded.heartbeats.percentile(99);
      figures[`${name} enter p99 ms`] = enterP99;
      figures[`${name} leave p99 ms`] = m.loaded.leaves.percentile(99);
      figures[`${name} sweep lag p99 ms`] = m.sweepLag.percentile(99);
      // In a smoke run a lost message or a leave never seen is a broken mechanism, not a slow machine.
      if (context.smoke && (m.received !== m.published || m.unobserved > 0))
        throw new Error(
          `${name}: ${m.received} of ${m.published} messages received, ${m.unobserved} vanished clients never announced`,
        );
    });

    return {
      tables: [table, counts],
      targets,
      notes: [
        `Load: ${sizes.loadConcurrency} presents in flight; one 32-hex client id per user, user JSON as bench/lib/users.ts. Timed phase: ${sizes.enterRate} enters/s on a clock (at most ${MAX_CHURN_IN_FLIGHT} enters and leaves in flight), half left ${fmt(sizes.leaveAfterMs / 1000)} s later and half vanishing with a ${fmt(timeoutS)} s timeout; PresenceCore's sweeper every ${fmt(sizes.sweepIntervalMs / 1000)} s; heartbeats of random loaded clients from ${sizes.heartbeatConcurrency} workers for the first ${SATURATED_SHARE * 100} % of it, then on a clock at ${LOADED_SHARE}× the rate they reached (at most ${MAX_HEARTBEATS_IN_FLIGHT} in flight).`,
        `One Node process and one auto-pipelined connection (as the server's), a subscriber on all ${fmt(sizes.channels)} bus channels; the deployments ran one after the other (cluster first) on fresh redis-servers this bench started. The load average (other users of the machine included) is in the second table: ${os.cpus().length} cores.`,
        'Loaded clients have a 30-minute timeout so that none expires while one machine heartbeats them less often than every 30 s; their heartbeats run the same present script.',
        'Latencies are from reservoir samples (100,000 per figure); an enter "overlapping a sweep" was issued while one ran or completed after one started. The ratio column is cluster ÷ single (> 1: the cluster figure is the larger).',
      ],
      figures,
    };
  },
};

export default bench;
