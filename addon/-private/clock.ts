/** An opaque timer handle returned by `PresenceClock.setTimeout`. */
export type TimerHandle = unknown;

/**
 * Everything time-related the client does goes through this, so tests advance a fake clock instead of
 * sleeping through a 30 s heartbeat or a 500 ms debounce. Register a replacement in the container as
 * `ember-presence:clock` (with `instantiate: false`) before the service is first looked up.
 */
export interface PresenceClock {
  /** Milliseconds since the epoch (or any monotonic origin the fake chooses). */
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * `true` for a clock that moves only when a test moves it (the test-support `FakeClock`). `settled()`
   * then does not wait for an update whose debounce or throttle has not run out yet — nothing would
   * ever end that wait — and the test moves the clock to send it.
   */
  readonly manual?: boolean;
}

/**
 * The real clock. Deliberately plain `setTimeout`, not Ember's run loop `later`: `settled()` waits for
 * every run-loop timer, and a perpetual 30 s heartbeat would then keep every test from settling. Finite
 * work is tracked with test waiters instead.
 */
export const systemClock: PresenceClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) =>
    globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * One re-armable timer on a `PresenceClock`. A due time already in the past runs on a microtask rather
 * than a 0 ms timer: with the zero debounce/throttle of a test environment, work then happens before
 * `settled()` next looks, and a fake clock does not need to be ticked for it.
 */
export class Timer {
  #clock: PresenceClock;
  #callback: () => void;
  #handle: TimerHandle;
  #generation = 0;
  #dueAt: number | undefined;

  constructor(clock: PresenceClock, callback: () => void) {
    this.#clock = clock;
    this.#callback = callback;
  }

  /** When the timer fires next, or `undefined` when it is not armed. */
  get dueAt(): number | undefined {
    return this.#dueAt;
  }

  /** (Re-)arms the timer for the absolute time `at`, replacing any earlier arming. */
  at(at: number): void {
    this.cancel();
    const generation = this.#generation;
    this.#dueAt = at;
    const fire = () => {
      if (generation !== this.#generation) return;
      this.#handle = undefined;
      this.#dueAt = undefined;
      this.#callback();
    };
    const delay = at - this.#clock.now();
    if (delay <= 0) queueMicrotask(fire);
    else this.#handle = this.#clock.setTimeout(fire, delay);
  }

  cancel(): void {
    this.#generation++;
    this.#dueAt = undefined;
    if (this.#handle !== undefined) {
      this.#clock.clearTimeout(this.#handle);
      this.#handle = undefined;
    }
  }
}
