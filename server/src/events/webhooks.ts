import { createHmac, timingSafeEqual } from 'node:crypto';

import { NO_EVENT_METRICS, type EventMetrics } from '../core/metrics-types.js';
import type { PresenceEvent } from '../core/store.js';
import { globalTimers, type Timers } from '../core/timers.js';
import type { Clock } from '../core/types.js';
import type { Logger } from '../http/logger.js';
import type { EventSink } from './dispatcher.js';

/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>`. */
export const WEBHOOK_SIGNATURE_HEADER = 'X-Presence-Signature';

/** Options of {@link createWebhookSink} (`webhooks` of `createPresenceServer`). */
export interface WebhookOptions {
  /** Receivers (http or https URLs): each gets every event. */
  urls: readonly string[];
  /** The HMAC-SHA256 key of the signature header; at least 16 characters. */
  secret: string;
  /** A POST not answered within this is a failure (retried). Default 10 s. */
  timeoutMs?: number;
  /** The first retry waits this long, each next one twice as long, at most `maxRetryDelayMs`. Default 1 s. */
  firstRetryMs?: number;
  /** Default 60 s. */
  maxRetryDelayMs?: number;
  /** Attempts per POST before its events are dropped (logged and counted). Default 12 (~7 minutes). */
  maxAttempts?: number;
  /** Events older than this are dropped instead of retried again. Default 1 hour. */
  maxAgeMs?: number;
  /** Events per POST; more are sent in several POSTs, one after the other. Default 500. */
  maxEventsPerPost?: number;
  /** The `fetch` to use (tests). Default: the global one. */
  fetch?: typeof fetch;
}

/** One event as a webhook receiver gets it. */
export interface WebhookEvent {
  /** The same on every delivery of this event: de-duplicate on it. */
  id: string;
  name: PresenceEvent['name'];
  channel: string;
  user_id: number;
  /** When the change happened, ms since the epoch. */
  at: number;
}

/** The body of a webhook POST. */
export interface WebhookBody {
  /** When this POST was sent (ms since the epoch): reject old ones to stop replays. */
  time_ms: number;
  events: WebhookEvent[];
}

/** `sha256=<hex>`: the value of {@link WEBHOOK_SIGNATURE_HEADER} for `body` signed with `secret`. */
export function signWebhookBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Whether `signature` (the header) is the signature of the raw `body` with `secret`, compared in constant
 * time. What a receiver written in Node runs (see the README for a standalone snippet).
 */
export function verifyWebhookSignature(
  secret: string,
  body: string | Buffer,
  signature: string | undefined | null,
): boolean {
  if (typeof signature !== 'string') return false;
  const expected = Buffer.from(
    signWebhookBody(
      secret,
      typeof body === 'string' ? body : body.toString('utf8'),
    ),
  );
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function checkUrl(url: unknown): string {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw new TypeError(
      `webhook URL ${JSON.stringify(url)} is not a URL: give an absolute http(s) URL such as https://example.com/presence-hook`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new TypeError(
      `webhook URL ${JSON.stringify(url)} must use http or https`,
    );
  return parsed.href;
}

function count(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  const result = value ?? fallback;
  if (!Number.isSafeInteger(result) || result < 1)
    throw new TypeError(
      `webhooks.${name} must be a positive integer, got ${String(value)}`,
    );
  return result;
}

/** Checks webhook options; throws a TypeError that names the fix. */
export function checkWebhookOptions(
  options: WebhookOptions,
): Required<Omit<WebhookOptions, 'fetch'>> & { fetch: typeof fetch } {
  if (!options || typeof options !== 'object')
    throw new TypeError('webhooks must be an object { urls, secret }');
  if (!Array.isArray(options.urls) || options.urls.length === 0)
    throw new TypeError('webhooks.urls must list at least one receiver URL');
  if (typeof options.secret !== 'string' || options.secret.length < 16)
    throw new TypeError(
      'webhooks.secret must be a string of at least 16 characters (e.g. `openssl rand -hex 32`): receivers check the signature with it',
    );
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== 'function')
    throw new TypeError('webhooks need fetch (Node 18 or later)');
  return {
    urls: [...new Set(options.urls.map(checkUrl))],
    secret: options.secret,
    timeoutMs: count(options.timeoutMs, 10_000, 'timeoutMs'),
    firstRetryMs: count(options.firstRetryMs, 1000, 'firstRetryMs'),
    maxRetryDelayMs: count(options.maxRetryDelayMs, 60_000, 'maxRetryDelayMs'),
    maxAttempts: count(options.maxAttempts, 12, 'maxAttempts'),
    maxAgeMs: count(options.maxAgeMs, 60 * 60 * 1000, 'maxAgeMs'),
    maxEventsPerPost: count(options.maxEventsPerPost, 500, 'maxEventsPerPost'),
    fetch: fetchImpl,
  };
}

/** A fetch failure as one line: undici puts the useful part (ECONNREFUSED, a timeout) in `cause`. */
function failureText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as
    { code?: unknown; message?: unknown } | undefined;
  const detail = cause?.code ?? cause?.message;
  return typeof detail === 'string' || typeof detail === 'number'
    ? `${error.message} (${detail})`
    : error.message;
}

/** What one POST attempt came to. */
type Outcome = 'ok' | 'retry' | 'reject';

/**
 * The webhook {@link EventSink}: POSTs `{ time_ms, events }` to every URL, signed, and resolves once every
 * receiver accepted (2xx) or its events were given up on. Network errors, timeouts, 5xx, 408 and 429 are
 * retried with exponential back-off (1 s, 2 s, 4 s … at most 60 s) until `maxAttempts` or `maxAgeMs`;
 * another 4xx means the receiver refuses these events, which are then dropped at once. Dropped events
 * are logged and counted (`webhookDropped`), never retried again.
 */
export function createWebhookSink(
  options: WebhookOptions,
  deps: {
    clock: Clock;
    logger: Logger;
    metrics?: EventMetrics;
    timers?: Timers;
  },
): EventSink {
  const settings = checkWebhookOptions(options);
  const metrics = deps.metrics ?? NO_EVENT_METRICS;
  const timers = deps.timers ?? globalTimers;

  const wait = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      const onAbort = (): void => {
        timers.clearTimeout(handle);
        reject(signal.reason as Error);
      };
      const handle = timers.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });

  async function attempt(
    url: string,
    events: readonly WebhookEvent[],
    signal: AbortSignal,
  ): Promise<{ outcome: Outcome; detail: string }> {
    const body = JSON.stringify({
      time_ms: Math.floor(deps.clock()),
      events: [...events],
    } satisfies WebhookBody);
    try {
      const response = await settings.fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'ember-presence-webhooks',
          [WEBHOOK_SIGNATURE_HEADER]: signWebhookBody(settings.secret, body),
        },
        body,
        redirect: 'error',
        signal: AbortSignal.any([
          signal,
          AbortSignal.timeout(settings.timeoutMs),
        ]),
      });
      // The body is not needed; reading it frees the connection for the next POST.
      await response.arrayBuffer().catch(() => undefined);
      const status = response.status;
      if (status >= 200 && status < 300)
        return { outcome: 'ok', detail: String(status) };
      if (status >= 500 || status === 408 || status === 429)
        return { outcome: 'retry', detail: `HTTP ${status}` };
      return { outcome: 'reject', detail: `HTTP ${status}` };
    } catch (error) {
      if (signal.aborted) throw error;
      return { outcome: 'retry', detail: failureText(error) };
    }
  }

  async function post(
    url: string,
    events: readonly WebhookEvent[],
    signal: AbortSignal,
  ): Promise<void> {
    const oldest = Math.min(...events.map((event) => event.at));
    for (let tries = 1; ; tries++) {
      const { outcome, detail } = await attempt(url, events, signal);
      if (outcome === 'ok') {
        metrics.webhookDelivered(events.length);
        return;
      }
      const age = Math.floor(deps.clock()) - oldest;
      const delay = Math.min(
        settings.firstRetryMs * 2 ** (tries - 1),
        settings.maxRetryDelayMs,
      );
      if (
        outcome === 'reject' ||
        tries >= settings.maxAttempts ||
        age + delay > settings.maxAgeMs
      ) {
        metrics.webhookDropped(events.length);
        deps.logger.error('webhook events dropped', {
          url,
          events: events.length,
          first_event_id: events[0]?.id,
          attempts: tries,
          reason:
            outcome === 'reject' ? `receiver refused them (${detail})` : detail,
        });
        return;
      }
      metrics.webhookRetried();
      deps.logger.warn('webhook POST failed; retrying', {
        url,
        attempt: tries,
        retry_in_ms: delay,
        reason: detail,
      });
      await wait(delay, signal);
    }
  }

  return {
    async deliver(events, signal) {
      const payload: WebhookEvent[] = events.map((event) => ({
        id: event.id,
        name: event.name,
        channel: event.channel,
        user_id: event.userId,
        at: event.at,
      }));
      // Chunks one after the other (each channel's order holds across them); receivers in parallel.
      for (let i = 0; i < payload.length; i += settings.maxEventsPerPost) {
        const chunk = payload.slice(i, i + settings.maxEventsPerPost);
        await Promise.all(settings.urls.map((url) => post(url, chunk, signal)));
      }
    },
  };
}
