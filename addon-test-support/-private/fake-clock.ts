import type { PresenceClock, TimerHandle } from 'ember-presence';

interface PendingTimer {
  at: number;
  seq: number;
  callback: () => void;
}

/**
 * The one clock of a presence test: the client's debounce, throttle, heartbeat and back-off timers and
 * the fake server's expiry sweep all run on it, and it only moves when `advance()` is called. Nothing in
 * a test built on `setupPresence` waits in real time.
 */
export class FakeClock implements PresenceClock {
  /** It only moves when a test moves it (see `PresenceClock.manual`). */
  readonly manual = true;
  #now: number;
  #seq = 0;
  #timers = new Map<number, PendingTimer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, {
      at: this.#now + Math.max(0, Number(ms) || 0),
      seq,
      callback,
    });
    return seq;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Timers still armed. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due at its own time and in order, and
   * letting the promises each one starts settle before the next fires (a sweep's store calls, a
   * heartbeat's request). Timers armed by those callbacks fire too when they fall due within the window.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#target(ms, 'advanceClock(ms)');
    while (this.#fireNext(target)) await drain();
    this.#now = target;
    await drain();
  }

  /**
   * The synchronous form of `advance`, for unit tests that drive the client without a fake server:
   * fires the timers due within `ms` in the same order, but does not let promises settle in between.
   */
  tick(ms: number): void {
    const target = this.#target(ms, 'tick(ms)');
    while (this.#fireNext(target));
    this.#now = target;
  }

  /** Drops every timer (teardown). */
  reset(): void {
    this.#timers.clear();
  }

  #target(ms: number, caller: string): number {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw new TypeError(
        `${caller}: ms must be a finite number ≥ 0, got ${String(ms)}`,
      );
    }
    return this.#now + ms;
  }

  /** Fires the earliest timer due by `target` (moving `now` to its time); false when none is. */
  #fireNext(target: number): boolean {
    const next = this.#nextDue(target);
    if (!next) return false;
    this.#timers.delete(next.seq);
    this.#now = next.at;
    next.callback();
    return true;
  }

  #nextDue(target: number): PendingTimer | undefined {
    let next: PendingTimer | undefined;
    for (const timer of this.#timers.values()) {
      if (timer.at > target) continue;
      if (
        !next ||
        timer.at < next.at ||
        (timer.at === next.at && timer.seq < next.seq)
      ) {
        next = timer;
      }
    }
    return next;
  }
}

/**
 * Lets pending promise chains run: a few macrotask turns, enough for a store call, a pretender response
 * and the client's handling of it. Not a wait for time to pass.
 */
async function drain(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await new Promise<void>((resolve) => globalThis.setTimeout(resolve, 0));
  }
}
