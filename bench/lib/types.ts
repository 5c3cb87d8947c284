/** The shape every bench module exports and returns, so `run.ts` can print, check and record them alike. */

/** What a bench gets from the runner. */
export interface BenchContext {
  /** Tiny sizes, no RESULTS.md: a few seconds, to keep the scripts from rotting. */
  smoke: boolean;
  /** Redis for the Redis-backed cases (REDIS_URL, default redis://127.0.0.1:6379). */
  redisUrl: string;
  /** Progress line on stderr (tables go to stdout). */
  log(line: string): void;
  /**
   * From `--duration <seconds>`: how long a bench with a timed load phase (`scale`) runs it; `null`: the
   * bench's default. Other benches ignore it.
   */
  durationMs: number | null;
}

/** A printed table; cells are preformatted strings or numbers (formatted by the printer). */
export interface Table {
  title: string;
  columns: string[];
  rows: (string | number | null)[][];
}

/** One target of issue 10, as measured in this run. */
export interface TargetCheck {
  what: string;
  target: string;
  measured: string;
  /** `null` when the run could not decide (e.g. smoke sizes). */
  met: boolean | null;
}

/** What a bench returns. */
export interface BenchResult {
  tables: Table[];
  targets: TargetCheck[];
  /** Free-form remarks printed under the tables (what was measured, caveats). */
  notes: string[];
  /**
   * Named figures the runner checks for sanity: each must be a finite number > 0 (throughputs, latencies,
   * bytes). A bench also throws on anything it can check itself (a missing delivery, a wrong count).
   */
  figures: Record<string, number>;
  /** Set when the bench could not run here (the reason); it then counts as neither passed nor failed. */
  skipped?: string;
}

/** A bench module's default export. */
export interface Bench {
  name: string;
  description: string;
  /**
   * Run only when named (`npm run bench -- scale`), never by a bare `npm run bench`; `--smoke` runs it
   * like every other bench. For a bench whose full run would double the suite's time.
   */
  optIn?: boolean;
  /** The runner's time limit for this bench, when the default (a few minutes) does not fit. */
  timeoutMs?(context: BenchContext): number;
  run(context: BenchContext): Promise<BenchResult>;
}
