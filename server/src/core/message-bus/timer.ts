import type { Timers } from '../timers.js';

/**
 * The timer functions the bus uses, injectable so that a test (or the in-browser fake server driven by a
 * fake clock) decides when a long poll times out. The core's shared {@link Timers}.
 */
export type BusTimers = Timers;

export { globalTimers } from '../timers.js';
