/** Small statistics helpers: medians and percentiles over plain arrays (no dependency). */

/** The `p`-th percentile (0–100) by nearest rank; NaN for an empty list. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const sorted = Array.from(values).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

/** The median; NaN for an empty list. */
export function median(values: ArrayLike<number>): number {
  const sorted = Array.from(values).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Formats a number for a table: integers with thousands separators, small values with 2–3 digits. */
export function fmt(value: number | string | null | undefined): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (Number.isInteger(value) && abs < 1000) return String(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** `a / b` formatted as a ratio (`0.42×`). */
export function ratio(a: number, b: number): number {
  return b === 0 ? Number.NaN : a / b;
}

/**
 * A uniform random sample of at most `capacity` values from a stream of any length (Algorithm R): the
 * percentiles of millions of latencies in bounded memory. With 100,000 samples a p99 is off by well
 * under a percentile rank.
 */
export class Reservoir {
  readonly #values: Float64Array;
  #seen = 0;

  constructor(capacity = 100_000) {
    this.#values = new Float64Array(capacity);
  }

  /** Values offered so far (the sample holds at most `capacity` of them). */
  get count(): number {
    return this.#seen;
  }

  add(value: number): void {
    const seen = this.#seen++;
    if (seen < this.#values.length) {
      this.#values[seen] = value;
      return;
    }
    const slot = Math.floor(Math.random() * this.#seen);
    if (slot < this.#values.length) this.#values[slot] = value;
  }

  /** The `p`-th percentile of the sample (NaN when nothing was added). */
  percentile(p: number): number {
    return percentile(
      this.#values.subarray(0, Math.min(this.#seen, this.#values.length)),
      p,
    );
  }
}
