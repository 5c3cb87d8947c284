import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

import * as prettier from 'prettier';

import { fmt } from './stats.js';
import type { BenchResult, Table } from './types.js';

/** Where results accumulate, newest last. */
export const RESULTS_FILE = new URL('../RESULTS.md', import.meta.url);

/** The machine a run happened on, for the RESULTS.md header. */
export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  redis: string;
  date: string;
  commit: string;
  /** The working tree had changes (tracked or untracked) beside `commit`: the figures are not its own. */
  dirty: boolean;
}

/**
 * Reads cpu/cores/mem from node:os and the commit from git (read-only; `unknown` without git), with
 * whether the tree differed from it.
 */
export function describeMachine(redis: string): Machine {
  let commit = 'unknown';
  let dirty = false;
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: new URL('..', import.meta.url),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  try {
    commit = git('rev-parse', '--short', 'HEAD');
    // Appending to RESULTS.md is what a run does: it does not make the next run's figures another tree's.
    dirty =
      git(
        'status',
        '--porcelain',
        '--',
        ':(top)',
        ':(exclude,top)bench/RESULTS.md',
      ).length > 0;
  } catch {
    // Not a git checkout (e.g. an unpacked tarball): the date still identifies the run.
  }
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    redis,
    date: new Date().toISOString(),
    commit,
    dirty,
  };
}

/** `abc1234`, or `abc1234 + uncommitted changes` when the tree was dirty. */
export function describeCommit(
  machine: Pick<Machine, 'commit' | 'dirty'>,
): string {
  return machine.dirty
    ? `${machine.commit} + uncommitted changes`
    : machine.commit;
}

function cell(value: string | number | null): string {
  return typeof value === 'number' ? fmt(value) : (value ?? '—');
}

/** A table as aligned plain text for the terminal. */
export function textTable(table: Table): string {
  const rows = [table.columns, ...table.rows.map((row) => row.map(cell))];
  const widths = table.columns.map((_, i) =>
    Math.max(...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (row: string[]): string =>
    row
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ');
  return [
    table.title,
    line(rows[0]!),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.slice(1).map(line),
  ].join('\n');
}

/** Text for a Markdown table cell: a `|` in it (key names like `p|users`) would end the cell. */
function mdCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** A table as Markdown. */
export function markdownTable(table: Table): string {
  return [
    `**${table.title}**`,
    '',
    `| ${table.columns.map(mdCell).join(' | ')} |`,
    `|${table.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...table.rows.map(
      (row) => `| ${row.map((value) => mdCell(cell(value))).join(' | ')} |`,
    ),
  ].join('\n');
}

/** One bench's result as Markdown (tables, target checks, notes). */
export function markdownResult(
  name: string,
  result: BenchResult,
  seconds: number,
): string {
  const parts = [`### ${name} (${seconds.toFixed(1)} s)`, ''];
  for (const table of result.tables) parts.push(markdownTable(table), '');
  if (result.targets.length > 0) {
    parts.push('| target | wanted | measured | met |', '|---|---|---|---|');
    for (const t of result.targets)
      parts.push(
        `| ${mdCell(t.what)} | ${mdCell(t.target)} | ${mdCell(t.measured)} | ${t.met === null ? '—' : t.met ? 'yes' : '**no**'} |`,
      );
    parts.push('');
  }
  for (const note of result.notes) parts.push(`- ${note}`);
  if (result.notes.length > 0) parts.push('');
  return parts.join('\n');
}

/**
 * Appends one run (machine header + each bench) to bench/RESULTS.md, then formats the file with the
 * repository's Prettier config so `npm run lint` stays green.
 */
export async function appendResults(
  machine: Machine,
  sections: string[],
): Promise<void> {
  if (!existsSync(RESULTS_FILE)) {
    writeFileSync(
      RESULTS_FILE,
      '# Benchmark results\n\nAppended by `npm run bench` (newest last). Figures are medians of several rounds; ' +
        'compare the ratios to the same-run baselines, not absolute numbers across runs or machines.\n',
    );
  }
  const header = [
    '',
    `## ${machine.date} — commit ${describeCommit(machine)}`,
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB; Node ${machine.node}; Redis ${machine.redis}.`,
    '',
  ].join('\n');
  appendFileSync(RESULTS_FILE, `${header}${sections.join('\n')}`);
  const path = fileURLToPath(RESULTS_FILE);
  const options = (await prettier.resolveConfig(path)) ?? {};
  const formatted = await prettier.format(readFileSync(path, 'utf8'), {
    ...options,
    filepath: path,
  });
  writeFileSync(RESULTS_FILE, formatted);
}
