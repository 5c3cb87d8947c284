/**
 * The timer functions the bus uses, injectable so that a test (or the in-browser fake server driven by a
 * fake clock) decides when a long poll times out. Same shape as the presence core's `Timers`.
 */
export interface BusTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The default {@link BusTimers}: the global timers, `unref`'d when the platform has it, so a pending long
 * poll never keeps a Node process alive; works unchanged in the browser.
 */
export const globalTimers: BusTimers = {
  setTimeout(callback, ms) {
    const handle: unknown = globalThis.setTimeout(callback, Math.max(0, ms));
    const unref = (handle as { unref?: () => void } | null)?.unref;
    if (typeof unref === 'function') unref.call(handle);
    return handle;
  },
  clearTimeout(handle) {
    globalThis.clearTimeout(
      handle as Parameters<typeof globalThis.clearTimeout>[0],
    );
  },
};
