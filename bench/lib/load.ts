import { nowMs, percentile } from './stats.js';

/** The outcome of {@link runConcurrent}. */
export interface LoadResult {
  ops: number;
  elapsedMs: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Runs `op(i)` `total` times with `concurrency` operations in flight (each worker starts its next one when
 * its previous one settled), bounded by `maxMs` of wall time. Rejects on the first failed operation.
 */
export async function runConcurrent(
  op: (index: number, worker: number) => Promise<unknown>,
  options: { total: number; concurrency: number; maxMs?: number },
): Promise<LoadResult> {
  const { total, concurrency } = options;
  const maxMs = options.maxMs ?? 30_000;
  const latencies = new Float64Array(total);
  let next = 0;
  let done = 0;
  const started = nowMs();
  const worker = async (w: number): Promise<void> => {
    while (next < total && nowMs() - started < maxMs) {
      const index = next++;
      const t = nowMs();
      await op(index, w);
      latencies[done++] = nowMs() - t;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsedMs = nowMs() - started;
  const measured = latencies.subarray(0, done);
  return {
    ops: done,
    elapsedMs,
    opsPerSec: (done / elapsedMs) * 1000,
    p50Ms: percentile(measured, 50),
    p99Ms: percentile(measured, 99),
    maxMs: percentile(measured, 100),
  };
}
