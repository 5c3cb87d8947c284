import type { PresenceClock } from './clock';

/**
 * When a channel entered with `onlyWhileActive` stops counting as present (docs/protocol.md §7). Both values are
 * milliseconds.
 */
export interface ActiveOptions {
  /** No keyboard/pointer/touch/scroll input for this long means inactive. At least 60000. */
  userUnseenTime: number;
  /** The tab hidden for this long means inactive. At least 10000. */
  browserHiddenTime: number;
}

// Lower bounds: shorter windows would flap presence on and off during ordinary reading, and every flap
// is a request and a message to everybody else in the channel.
export const MIN_USER_UNSEEN_TIME = 60_000;
export const MIN_BROWSER_HIDDEN_TIME = 10_000;

export const DEFAULT_ACTIVE_OPTIONS: Readonly<ActiveOptions> = Object.freeze({
  userUnseenTime: MIN_USER_UNSEEN_TIME,
  browserHiddenTime: MIN_BROWSER_HIDDEN_TIME,
});

/** Applies defaults and throws an error naming the fix for values below the minimums. */
export function resolveActiveOptions(
  input: Partial<ActiveOptions> | undefined,
): ActiveOptions {
  const options = { ...DEFAULT_ACTIVE_OPTIONS, ...(input ?? {}) };
  if (
    typeof options.userUnseenTime !== 'number' ||
    !(options.userUnseenTime >= MIN_USER_UNSEEN_TIME)
  ) {
    throw new Error(
      `ember-presence: activeOptions.userUnseenTime must be at least ${MIN_USER_UNSEEN_TIME} ms, got ${String(options.userUnseenTime)}. Pass a larger value or leave it out for the default.`,
    );
  }
  if (
    typeof options.browserHiddenTime !== 'number' ||
    !(options.browserHiddenTime >= MIN_BROWSER_HIDDEN_TIME)
  ) {
    throw new Error(
      `ember-presence: activeOptions.browserHiddenTime must be at least ${MIN_BROWSER_HIDDEN_TIME} ms, got ${String(options.browserHiddenTime)}. Pass a larger value or leave it out for the default.`,
    );
  }
  return options;
}

/** Events that prove a person is looking at the page. */
const INPUT_EVENTS = [
  'keydown',
  'pointerdown',
  'pointermove',
  'wheel',
  'touchstart',
  'scroll',
  'focus',
] as const;

/** What the monitor reports. */
export interface ActivityListener {
  /** Input arrived. */
  input(): void;
  /** The page became visible or hidden. */
  visibilityChange(): void;
  /** The page is going away (or into the back/forward cache). */
  pageHide(): void;
  /** The page came back from the back/forward cache. */
  pageShow(): void;
}

/**
 * Watches input, visibility and page lifecycle. Holds two raw facts — when input was last seen and since
 * when the tab is hidden — and answers "is the user active under these options" from them and the clock.
 */
export class ActivityMonitor {
  #clock: PresenceClock;
  #listener: ActivityListener;
  #lastInputAt: number;
  #hiddenSince: number | undefined;
  #started = false;

  constructor(clock: PresenceClock, listener: ActivityListener) {
    this.#clock = clock;
    this.#listener = listener;
    this.#lastInputAt = clock.now();
    this.#hiddenSince = isHidden() ? clock.now() : undefined;
  }

  start(): void {
    if (this.#started || typeof window === 'undefined') return;
    this.#started = true;
    for (const type of INPUT_EVENTS) {
      window.addEventListener(type, this.#onInput, {
        capture: true,
        passive: true,
      });
    }
    document.addEventListener('visibilitychange', this.#onVisibility);
    // pagehide, not unload: it fires in every case unload does and keeps the page eligible for the
    // back/forward cache.
    window.addEventListener('pagehide', this.#onPageHide);
    window.addEventListener('pageshow', this.#onPageShow);
  }

  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    for (const type of INPUT_EVENTS)
      window.removeEventListener(type, this.#onInput, { capture: true });
    document.removeEventListener('visibilitychange', this.#onVisibility);
    window.removeEventListener('pagehide', this.#onPageHide);
    window.removeEventListener('pageshow', this.#onPageShow);
  }

  isActive(options: ActiveOptions, now: number): boolean {
    if (now - this.#lastInputAt >= options.userUnseenTime) return false;
    if (
      this.#hiddenSince !== undefined &&
      now - this.#hiddenSince >= options.browserHiddenTime
    )
      return false;
    return true;
  }

  /** When `isActive(options)` will turn false if nothing happens, or `undefined` if it already is. */
  inactiveAt(options: ActiveOptions, now: number): number | undefined {
    if (!this.isActive(options, now)) return undefined;
    const unseenAt = this.#lastInputAt + options.userUnseenTime;
    const hiddenAt =
      this.#hiddenSince === undefined
        ? Infinity
        : this.#hiddenSince + options.browserHiddenTime;
    return Math.min(unseenAt, hiddenAt);
  }

  #onInput = (): void => {
    this.#lastInputAt = this.#clock.now();
    this.#listener.input();
  };

  #onVisibility = (): void => {
    const now = this.#clock.now();
    if (isHidden()) {
      this.#hiddenSince ??= now;
    } else {
      // Coming back to the tab is seeing it, even before the first key press.
      this.#hiddenSince = undefined;
      this.#lastInputAt = now;
    }
    this.#listener.visibilityChange();
  };

  #onPageHide = (): void => this.#listener.pageHide();

  #onPageShow = (event: PageTransitionEvent): void => {
    if (event.persisted) this.#listener.pageShow();
  };
}

function isHidden(): boolean {
  return (
    typeof document !== 'undefined' && document.visibilityState === 'hidden'
  );
}
