import type { PresenceClock, TimerHandle } from 'ember-presence';

/**
 * A clock that only moves when told to. `tick(ms)` fires every timer that falls due, in order, at its
 * own time (so a timer armed by another timer's callback fires too if it is due within the tick).
 */
export class FakeClock implements PresenceClock {
  #now = 1_700_000_000_000;
  #nextId = 1;
  #timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Timers still armed. */
  get pending(): number {
    return this.#timers.size;
  }

  tick(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let nextId: number | undefined;
      let next: { at: number; callback: () => void } | undefined;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= target && (!next || timer.at < next.at)) {
          nextId = id;
          next = timer;
        }
      }
      if (!next || nextId === undefined) break;
      this.#timers.delete(nextId);
      this.#now = next.at;
      next.callback();
    }
    this.#now = target;
  }
}
