import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Loopback ports of the test cluster's three masters; override with REDIS_CLUSTER_PORTS=7101,7102,7103. */
export const DEFAULT_CLUSTER_PORTS: readonly number[] = (
  process.env['REDIS_CLUSTER_PORTS'] ?? '7101,7102,7103'
)
  .split(',')
  .map(Number);

/** Starting three empty nodes and creating the cluster takes ~1 s; this bounds a broken environment. */
const START_TIMEOUT_MS = 20_000;

/** A running Redis Cluster for tests. */
export interface RedisClusterHandle {
  /** Startup nodes for ioredis `new Cluster(nodes)`. */
  nodes: { host: string; port: number }[];
  /** True when this handle started the processes (false: an already running cluster was reused). */
  started: boolean;
  /** Stops the processes this handle started and removes their directories; a reused cluster is left alone. */
  stop(): Promise<void>;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(
    'redis-cli',
    ['-h', '127.0.0.1', '-p', String(port), ...args],
    { timeout: 5000 },
  );
  return stdout;
}

async function clusterIsOk(ports: readonly number[]): Promise<boolean> {
  try {
    const infos = await Promise.all(
      ports.map((port) => redisCli(port, 'cluster', 'info')),
    );
    return infos.every(
      (info) =>
        /cluster_state:ok/.test(info) &&
        /cluster_known_nodes:(\d+)/.exec(info)?.[1] === String(ports.length),
    );
  } catch {
    return false;
  }
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  processes: readonly ChildProcess[],
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await check())) {
    const exited = processes.find(
      (child) => child.exitCode !== null || child.signalCode !== null,
    );
    if (exited) {
      throw new Error(
        `Redis Cluster: redis-server ${exited.spawnargs.slice(1, 3).join(' ')} exited early ` +
          '(is redis-server >= 7 installed and the port free? REDIS_CLUSTER_PORTS picks other ports)',
      );
    }
    if (Date.now() > deadline)
      throw new Error(`Redis Cluster: timed out waiting for ${what}`);
    await delay(50);
  }
}

/**
 * Starts a 3-master Redis Cluster from `redis-server` on loopback ports (each node in its own temp dir,
 * no persistence), or reuses one that already answers `cluster_state:ok` on those ports.
 *
 * @example
 * let cluster: RedisClusterHandle;
 * before(async () => { cluster = await startRedisCluster(); });
 * after(() => cluster.stop());
 */
export async function startRedisCluster(
  ports: readonly number[] = DEFAULT_CLUSTER_PORTS,
): Promise<RedisClusterHandle> {
  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }));
  if (await clusterIsOk(ports)) {
    return { nodes, started: false, stop: () => Promise.resolve() };
  }

  const processes: ChildProcess[] = [];
  const dirs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      processes.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null)
              return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    await Promise.all(
      dirs.map((dir) => rm(dir, { recursive: true, force: true })),
    );
  };

  try {
    for (const port of ports) {
      const dir = await mkdtemp(
        join(tmpdir(), `ember-presence-cluster-${port}-`),
      );
      dirs.push(dir);
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '5000',
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore' },
      );
      child.once('error', () => undefined); // reported by the readiness wait below
      processes.push(child);
    }
    await waitUntil(
      'the nodes to answer PING',
      async () => {
        try {
          const replies = await Promise.all(
            ports.map((port) => redisCli(port, 'ping')),
          );
          return replies.every((reply) => reply.trim() === 'PONG');
        } catch {
          return false;
        }
      },
      processes,
    );
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${n.host}:${n.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: START_TIMEOUT_MS },
    );
    await waitUntil(
      'cluster_state:ok on every node',
      () => clusterIsOk(ports),
      processes,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, started: true, stop };
}
