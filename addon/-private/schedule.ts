import type { ResolvedPresenceConfig } from './config';

/**
 * The timing rules of the client (docs/protocol.md §7), as plain functions of times and counts: no clock, no
 * timers, no state. The updater and the channel states keep the times and arm the timers; these say
 * when. All times are in milliseconds on the clock's scale; `-Infinity` stands for "never happened".
 */
export type ScheduleConfig = Pick<
  ResolvedPresenceConfig,
  | 'debounceMs'
  | 'throttleMs'
  | 'heartbeatMs'
  | 'backoffMinMs'
  | 'backoffMaxMs'
  | 'rateLimitWaitMs'
  | 'subscribeRetryMs'
>;

/** What the updater knows about its own past that decides when it sends next. */
export interface UpdateTimes {
  /** When the last change happened. */
  readonly lastChangeAt: number;
  /** When the oldest unsent change happened. */
  readonly dirtySince: number;
  /** When the last request went out. */
  readonly lastSentAt: number;
  /** Nothing may be sent before this (back-off or rate limit); `-Infinity` when nothing holds it back. */
  readonly retryAt: number;
}

/**
 * When unsent changes go out: `debounceMs` after the last change, but never more than
 * `debounceMs + throttleMs` after the oldest (so a stream of changes still goes out), at most once per
 * `throttleMs`, and not before a retry is allowed.
 */
export function changeDueAt(
  times: UpdateTimes,
  config: Pick<ScheduleConfig, 'debounceMs' | 'throttleMs'>,
): number {
  const debounced = Math.min(
    times.lastChangeAt + config.debounceMs,
    times.dirtySince + config.debounceMs + config.throttleMs,
  );
  return Math.max(
    debounced,
    times.lastSentAt + config.throttleMs,
    times.retryAt,
  );
}

/**
 * When the next heartbeat goes out for confirmed channels, the oldest of which was last reported at
 * `oldestReportAt`: `heartbeatMs` later, at most once per `throttleMs`, not before a retry is allowed.
 */
export function heartbeatDueAt(
  oldestReportAt: number,
  times: Pick<UpdateTimes, 'lastSentAt' | 'retryAt'>,
  config: Pick<ScheduleConfig, 'heartbeatMs' | 'throttleMs'>,
): number {
  return Math.max(
    oldestReportAt + config.heartbeatMs,
    times.lastSentAt + config.throttleMs,
    times.retryAt,
  );
}

/**
 * When the updater next has something to send, or `undefined` for nothing:
 * - unsent changes: `changeDueAt`;
 * - else channels the server confirmed (`oldestReportAt`: when the one reported longest ago was last
 *   sent): their heartbeat, `heartbeatDueAt`;
 * - else channels the server may or may not have (`unconfirmed`, their answer was lost): a heartbeat
 *   `heartbeatMs` after the last request, not before a retry is allowed.
 */
export function nextUpdateAt(
  state: {
    readonly dirty: boolean;
    readonly oldestReportAt: number | undefined;
    readonly unconfirmed: boolean;
  },
  times: UpdateTimes,
  config: Pick<ScheduleConfig, 'debounceMs' | 'throttleMs' | 'heartbeatMs'>,
): number | undefined {
  if (state.dirty) return changeDueAt(times, config);
  if (state.oldestReportAt !== undefined)
    return heartbeatDueAt(state.oldestReportAt, times, config);
  if (state.unconfirmed)
    return Math.max(times.lastSentAt + config.heartbeatMs, times.retryAt);
  return undefined;
}

/** Whether a channel last reported present at `lastReportedAt` is due for a heartbeat at `now`. */
export function isHeartbeatDue(
  lastReportedAt: number,
  now: number,
  config: Pick<ScheduleConfig, 'heartbeatMs'>,
): boolean {
  return now >= lastReportedAt + config.heartbeatMs;
}

/**
 * Exponential back-off after the `failures`-th failure in a row (1, 2, …): `backoffMinMs`, doubling
 * each time, capped at `backoffMaxMs`.
 */
export function backoffDelay(
  failures: number,
  config: Pick<ScheduleConfig, 'backoffMinMs' | 'backoffMaxMs'>,
): number {
  return Math.min(
    config.backoffMaxMs,
    config.backoffMinMs * 2 ** (failures - 1),
  );
}

/** How long to wait after a 429: what the server asked for (`waitMs`), else `rateLimitWaitMs`. */
export function rateLimitDelay(
  waitMs: number | undefined,
  config: Pick<ScheduleConfig, 'rateLimitWaitMs'>,
): number {
  return waitMs ?? config.rateLimitWaitMs;
}

/**
 * How long a first fetch (subscribe) waits before it is tried again after a failure that can recover:
 * `subscribeRetryMs`, whatever the attempt — a page opened while the server was away fills in soon
 * after it is back.
 */
export function subscribeRetryDelay(
  config: Pick<ScheduleConfig, 'subscribeRetryMs'>,
): number {
  return config.subscribeRetryMs;
}

/**
 * Whether `settled()` should wait for the update scheduled at `at` (`undefined`: none). It waits for a
 * change about to be sent, but neither for a heartbeat (that would be forever), nor through a back-off
 * or rate limit (a server that stays down would hang the test instead of failing it), nor for a
 * debounce on a manual clock (only the test can end it, by moving the clock).
 */
export function settledWaitsForUpdate(
  state: {
    readonly dirty: boolean;
    readonly retryAt: number;
    readonly at: number | undefined;
    readonly manualClock: boolean;
  },
  now: number,
): boolean {
  const waitsForTest =
    state.manualClock && state.at !== undefined && state.at > now;
  return state.dirty && state.retryAt <= now && !waitsForTest;
}
