import type { Timers } from '../../src/core/timers.js';

/** Timers that fire only when the test moves them. */
export class ManualTimers implements Timers {
  #now = 0;
  #seq = 0;
  readonly #pending = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): number {
    const handle = ++this.#seq;
    this.#pending.set(handle, { at: this.#now + ms, callback });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }

  /** Milliseconds moved so far (a clock for the test: `() => T + timers.now`). */
  get now(): number {
    return this.#now;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Moves time forward, firing what falls due in order, then lets the promises they start settle. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const due = [...this.#pending.entries()]
        .filter(([, timer]) => timer.at <= target)
        .sort(([a, x], [b, y]) => x.at - y.at || a - b)[0];
      if (!due) break;
      this.#pending.delete(due[0]);
      this.#now = due[1].at;
      due[1].callback();
      await settle();
    }
    this.#now = target;
    await settle();
  }
}

/** Lets pending promise chains (store reads, subscriptions) run; no time passes. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1)
    await new Promise<void>((resolve) => setImmediate(resolve));
}
