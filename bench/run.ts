/**
 * The bench runner (issue 10).
 *
 *   node --import tsx bench/run.ts                 every bench, appends bench/RESULTS.md
 *   node --import tsx bench/run.ts store-ops fan-out   only these
 *   node --import tsx bench/run.ts --smoke         every bench with tiny sizes, checks the figures are sane
 *                                                  numbers, writes nothing, exits non-zero on a failure
 *   node --import tsx bench/run.ts scale --duration 60   an opt-in bench (not in a bare run), its timed
 *                                                  phase shortened to 60 s
 *
 * Every bench measures its subject next to a baseline from the same run (machines here are shared and
 * noisy): read the ratios, not the absolute figures.
 */
import bigChannel from './big-channel.js';
import events from './events.js';
import client from './client.js';
import fanOut from './fan-out.js';
import { connectRedis, redisVersion } from './lib/redis.js';
import {
  appendResults,
  describeCommit,
  describeMachine,
  markdownResult,
  textTable,
} from './lib/report.js';
import type { Bench, BenchContext, BenchResult } from './lib/types.js';
import memory from './memory.js';
import httpUpdate from './http-update.js';
import scale from './scale.js';
import storeOps from './store-ops.js';

const BENCHES: Bench[] = [
  storeOps,
  httpUpdate,
  fanOut,
  bigChannel,
  memory,
  client,
  events,
  scale,
];

/** A bench that runs longer than this is stopped and counted as failed (full runs take a few minutes). */
// Smoke: tiny sizes, but the client bench still builds the demo app (10–60 s on 2 busy cores).
const BENCH_TIMEOUT_MS = { smoke: 180_000, full: 240_000 };

function usage(): string {
  return [
    'usage: npm run bench [-- [--smoke] [--duration <seconds>] [name ...]]',
    `benches: ${BENCHES.map((b) => `${b.name}${b.optIn ? ' [only when named, or --smoke]' : ''} (${b.description})`).join('; ')}`,
  ].join('\n');
}

interface Arguments {
  help: boolean;
  smoke: boolean;
  durationMs: number | null;
  names: string[];
}

/** The command line, or a message naming what is wrong with it. */
function parseArguments(args: readonly string[]): Arguments | string {
  const parsed: Arguments = {
    help: false,
    smoke: false,
    durationMs: null,
    names: [],
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') parsed.help = true;
    else if (arg === '--smoke') parsed.smoke = true;
    else if (arg === '--duration' || arg.startsWith('--duration=')) {
      const value = arg === '--duration' ? args[++i] : arg.slice(11);
      const seconds = Number(value);
      if (!value || !Number.isFinite(seconds) || seconds <= 0)
        return `--duration needs a number of seconds > 0 (e.g. --duration 120), got ${JSON.stringify(value ?? '')}`;
      parsed.durationMs = seconds * 1000;
    } else if (arg.startsWith('-')) return `unknown option: ${arg}`;
    else parsed.names.push(arg);
  }
  return parsed;
}

/** Problems with a result's figures: each must be a finite number > 0. */
function insaneFigures(result: BenchResult): string[] {
  const problems: string[] = [];
  if (Object.keys(result.figures).length === 0)
    problems.push('no figures reported');
  for (const [name, value] of Object.entries(result.figures)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
      problems.push(
        `${name} = ${String(value)} (expected a finite number > 0)`,
      );
  }
  return problems;
}

function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} took longer than ${ms / 1000} s`)),
        ms,
      );
      timer.unref();
    }),
  ]);
}

async function main(): Promise<number> {
  const args = parseArguments(process.argv.slice(2));
  if (typeof args === 'string') {
    console.error(`${args}\n${usage()}`);
    return 2;
  }
  if (args.help) {
    console.log(usage());
    return 0;
  }
  const { smoke, names } = args;
  const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length > 0) {
    console.error(`unknown bench: ${unknown.join(', ')}\n${usage()}`);
    return 2;
  }
  const selected =
    names.length > 0
      ? BENCHES.filter((b) => names.includes(b.name))
      : BENCHES.filter((b) => smoke || !b.optIn);
  const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const context: BenchContext = {
    smoke,
    redisUrl,
    log: (line) => process.stderr.write(`  … ${line}\n`),
    durationMs: args.durationMs,
  };

  const probe = await connectRedis(redisUrl);
  const machine = describeMachine(await redisVersion(probe));
  probe.disconnect();
  console.log(
    `ember-presence bench${smoke ? ' (smoke)' : ''}: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ` +
      `Node ${machine.node}, Redis ${machine.redis}, commit ${describeCommit(machine)}`,
  );

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const sections: string[] = [];
  for (const bench of selected) {
    console.log(`\n== ${bench.name}: ${bench.description}`);
    const started = Date.now();
    try {
      const result = await withTimeout(
        bench.run(context),
        bench.timeoutMs?.(context) ??
          (smoke ? BENCH_TIMEOUT_MS.smoke : BENCH_TIMEOUT_MS.full),
        bench.name,
      );
      const seconds = (Date.now() - started) / 1000;
      if (result.skipped) {
        skipped += 1;
        console.log(`skipped ${bench.name}: ${result.skipped}`);
        sections.push(`### ${bench.name}\n\nskipped: ${result.skipped}\n`);
        continue;
      }
      for (const table of result.tables) console.log(`\n${textTable(table)}`);
      if (result.targets.length > 0) {
        console.log('\ntargets:');
        for (const t of result.targets)
          console.log(
            `  [${t.met === null ? ' - ' : t.met ? 'met' : 'MISSED'}] ${t.what}: wanted ${t.target}, measured ${t.measured}`,
          );
      }
      for (const note of result.notes) console.log(`  note: ${note}`);
      const problems = insaneFigures(result);
      if (problems.length > 0) {
        failed += 1;
        console.log(`FAIL ${bench.name}: ${problems.join('; ')}`);
      } else {
        passed += 1;
        console.log(`ok ${bench.name} (${seconds.toFixed(1)} s)`);
      }
      sections.push(markdownResult(bench.name, result, seconds));
    } catch (error) {
      failed += 1;
      console.log(
        `FAIL ${bench.name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      sections.push(`### ${bench.name}\n\nFAILED: ${String(error)}\n`);
    }
  }
  if (!smoke) {
    await appendResults(machine, sections);
    console.log(`\nappended to bench/RESULTS.md`);
  }
  console.log(`\n${passed} passed, ${failed} failed`);
  if (skipped > 0) console.log(`(${skipped} skipped)`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Anything a failed bench left open (a socket, a child) must not keep the runner alive.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
