/**
 * What the core and the event dispatcher report to the metrics, as plain interfaces: importing this module
 * pulls in neither Express nor prom-client, so code that also runs in the browser fake can depend on it.
 * The implementation is `createMetrics` (server/src/http/metrics.ts); with metrics off, hand over
 * {@link NO_EVENT_METRICS} so callers never test for `null`.
 */

/**
 * The figures of join/leave hooks and webhooks (`ember_presence_webhook_*`, `ember_presence_hook_*`).
 *
 * @example
 * const metrics = presence.metrics ?? NO_EVENT_METRICS;
 * const response = await fetch(url, { method: 'POST', body });
 * if (response.ok) metrics.webhookDelivered(batch.events.length);
 * else if (attempt < maxAttempts) metrics.webhookRetried();
 * else metrics.webhookDropped(batch.events.length);
 */
export interface EventMetrics {
  /** A receiver accepted (2xx) one webhook POST carrying `events` events. */
  webhookDelivered(events: number): void;
  /** A webhook POST failed (network error, timeout, 5xx) and will be tried again. */
  webhookRetried(): void;
  /** `events` events were given up on (attempts or age exhausted): logged and dropped. */
  webhookDropped(events: number): void;
  /** An in-process hook handler threw (`error`) or ran past its time limit (`timeout`). */
  hookFailed(kind: 'error' | 'timeout'): void;
}

/** {@link EventMetrics} that record nothing: what to use when the server runs without metrics. */
export const NO_EVENT_METRICS: EventMetrics = Object.freeze({
  webhookDelivered: () => {},
  webhookRetried: () => {},
  webhookDropped: () => {},
  hookFailed: () => {},
});

/**
 * How a message-bus poll was answered: at once (`immediate`, including `?dlp=t` and error answers),
 * after being held (`long_poll`), or as a chunk or the end of a stream (`stream`).
 */
export type PollAnswerMode = 'immediate' | 'long_poll' | 'stream';

/**
 * What a poll answer carried: `messages`, nothing new (`empty`: `[]`, a held poll's timeout, a stream's
 * normal end), or an `error` status (4xx/5xx, a stream ended by a failure).
 */
export type PollAnswerResult = 'messages' | 'empty' | 'error';

/** Called once per poll answer (per chunk carrying messages, and once at the end, for a stream). */
export type PollAnswerObserver = (
  mode: PollAnswerMode,
  result: PollAnswerResult,
) => void;
