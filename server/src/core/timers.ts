/**
 * The timer functions the core uses (the presence sweeper, long-poll timeouts of the bus), injectable so
 * that a test, or the in-browser fake server driven by a fake clock, decides when they fire.
 */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The default {@link Timers}: the global timers, `unref`'d when the platform has it (Node returns a
 * Timeout with `unref()`, browsers a number), so a pending sweep or long poll never keeps a Node process
 * alive; works unchanged in the browser. A negative delay is treated as 0.
 */
export const globalTimers: Timers = {
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
