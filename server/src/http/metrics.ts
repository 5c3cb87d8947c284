import type { RequestHandler } from 'express';
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client';
import {
  UPDATE_REASONS_KEY,
  type HandlerResponse,
} from '../core/http-handlers.js';
import type {
  EventMetrics,
  PollAnswerMode,
  PollAnswerResult,
} from '../core/metrics-types.js';
import type { PresenceStore, StoreCounts } from '../core/store.js';
import { describeError, silentLogger, type Logger } from './logger.js';
import { withTimeout } from './with-timeout.js';

/**
 * Prometheus metrics of one presence server (the `metrics: true` option, CLI `--metrics`): a prom-client
 * `Registry` of its own (never the global one, so several servers can live in one process), filled by
 *
 * - a store wrapper ({@link PresenceMetrics.instrumentStore}) that times every store call and counts what
 *   it published and what the sweep removed;
 * - a request counter ({@link PresenceMetrics.requestCounter}) that classifies every answer of the
 *   presence endpoints by status (updates, GETs, 429s, 503s);
 * - hooks in the update and poll routes (per-channel update results, poll answers);
 * - gauges read at scrape time: present clients and channels (one `PresenceStore.counts()` call per
 *   scrape) and held polls;
 * - the {@link EventMetrics} of hooks and webhooks, and {@link PresenceMetrics.counter} for more.
 *
 * Nothing here runs when metrics are off: the server then installs no wrapper, no middleware and no route.
 *
 * @example
 * const metrics = createMetrics({ logger });
 * const store = metrics.instrumentStore(rawStore);
 * // …build the core and the bus on `store`…
 * metrics.collectFrom({ counts: () => rawStore.counts(), stats: () => bus.router.stats() });
 * router.get('/metrics', metrics.handler());
 */

/** Every metric of the server starts with it. */
export const METRIC_PREFIX = 'ember_presence_';

/**
 * 2 s for the store to answer the scrape's `counts()`: Prometheus's default scrape timeout is 10 s, and a
 * store slower than this is better reported as a failure (the gauges keep their last value).
 */
export const COUNTS_TIMEOUT_MS = 2000;

// Store calls are Redis round trips (a Lua script at most): sub-millisecond normally, seconds when sick.
const STORE_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
// A sweep removes every due client of the deployment in one call: a few ms, more after an outage.
const SWEEP_BUCKETS = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
// With the default 5 s sweep interval a client leaves at most ~5 s after its expiry; beyond, the sweeper
// is late (or not running).
const LAG_BUCKETS = [0.25, 0.5, 1, 2.5, 5, 7.5, 10, 15, 30, 60, 120, 300];

/** Store methods left out of the latency histogram: `close` is no request. */
const UNTIMED = new Set(['close']);

/** What a request to one of the server's endpoints is counted as. */
export type Endpoint = 'update' | 'get' | 'poll' | 'health';

/** An answer's status, as a label value. */
export type RequestResult =
  | 'ok'
  | 'bad_request'
  | 'forbidden'
  | 'not_found'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'error';

/** What the scrape-time gauges read. */
export interface MetricsSources {
  /** The store's deployment-wide counters (one call per scrape). */
  counts(): Promise<StoreCounts>;
  /** This process's message-bus counters. */
  stats(): { heldPolls: number; streams: number };
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Where failed `counts()` reads are reported (at `warn`). Default: silent. */
  logger?: Logger;
  /**
   * Append prom-client's default process metrics (`process_*`, `nodejs_*`) to every scrape. Default
   * `true`. They are collected once per process and shared by every registry that shows them.
   */
  processMetrics?: boolean;
}

/** The metrics of one server; also the {@link EventMetrics} handed to the event dispatcher. */
export interface PresenceMetrics extends EventMetrics {
  /** The registry of this server's own metrics (add yours, or `Registry.merge` it with the host's). */
  readonly registry: Registry;
  /** The `Content-Type` of {@link PresenceMetrics.scrape}'s text. */
  readonly contentType: string;
  /**
   * A counter on this registry, created on first use (the same one on later calls with that name). The
   * name must start with {@link METRIC_PREFIX} and should end with `_total`.
   *
   * @example metrics.counter('ember_presence_widgets_total', 'Widgets made.', ['kind']).inc({ kind: 'x' });
   */
  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames?: readonly L[],
  ): Counter<L>;
  /**
   * `store` behind a proxy that times each call (`ember_presence_store_seconds{operation}`) and counts
   * failures, published messages and sweep results. Every other property passes through unchanged.
   */
  instrumentStore(store: PresenceStore): PresenceStore;
  /** Where the scrape-time gauges read from; until it is called they stay 0. */
  collectFrom(sources: MetricsSources): void;
  /** Middleware counting the answers of the presence endpoints by status; mount it first. */
  requestCounter(): RequestHandler;
  /** Counts the channels of an answered `POST /presence/update` by result. */
  updateAnswered(response: HandlerResponse): void;
  /** Counts one message-bus poll answer. */
  pollAnswered(mode: PollAnswerMode, result: PollAnswerResult): void;
  /** The text exposition of every metric (the process metrics included, unless turned off). */
  scrape(): Promise<string>;
  /** `GET /metrics`: {@link PresenceMetrics.scrape} as `text/plain; version=0.0.4`, never cached. */
  handler(): RequestHandler;
}

/** Creates the metrics of one server. See the module documentation above. */
export function createMetrics(options: MetricsOptions = {}): PresenceMetrics {
  return new ServerMetrics(options);
}

/** The process metrics, collected once per process whatever the number of servers in it. */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

const UPDATE_RESULTS: readonly RequestResult[] = [
  'ok',
  'bad_request',
  'forbidden',
  'too_large',
  'rate_limited',
  'unavailable',
  'error',
];
const GET_RESULTS: readonly RequestResult[] = [
  'ok',
  'bad_request',
  'not_found',
  'unavailable',
  'error',
];
const ENDPOINTS: readonly Endpoint[] = ['update', 'get', 'poll', 'health'];

class ServerMetrics implements PresenceMetrics {
  readonly registry = new Registry();
  readonly contentType: string = this.registry.contentType;
  readonly #logger: Logger;
  readonly #processMetrics: boolean;
  #sources: MetricsSources | null = null;
  /** The `counts()` read in flight, shared by both gauges and by concurrent scrapes. */
  #reading: Promise<void> | null = null;

  readonly #updates: Counter<'result'>;
  readonly #updateChannels: Counter<'result'>;
  readonly #gets: Counter<'result'>;
  readonly #rateLimited: Counter<'endpoint'>;
  readonly #unavailable: Counter<'endpoint'>;
  readonly #pollAnswers: Counter<'mode' | 'result'>;
  readonly #published: Counter<'source'>;
  readonly #storeSeconds: Histogram<'operation'>;
  readonly #storeErrors: Counter<'operation'>;
  readonly #sweepSeconds: Histogram;
  readonly #sweepLag: Histogram;
  readonly #swept: Counter;
  readonly #countsFailures: Counter;
  readonly #webhookEvents: Counter<'result'>;
  readonly #webhookDeliveries: Counter;
  readonly #webhookRetries: Counter;
  readonly #hookFailures: Counter<'kind'>;
  readonly #setCounts: (counts: StoreCounts) => void;

  constructor(options: MetricsOptions) {
    this.#logger = options.logger ?? silentLogger;
    this.#processMetrics = options.processMetrics ?? true;
    const registers = [this.registry];
    const counter = <L extends string = never>(
      name: string,
      help: string,
      labelNames: readonly L[] = [],
    ): Counter<L> =>
      new Counter<L>({
        name: METRIC_PREFIX + name,
        help,
        labelNames,
        registers,
      });

    this.#updates = counter(
      'updates_total',
      'POST /presence/update answers by result.',
      ['result'],
    );
    for (const result of UPDATE_RESULTS) this.#updates.inc({ result }, 0);
    this.#updateChannels = counter(
      'update_channels_total',
      'Channels named in present_channels[] of answered updates: accepted, refused (no such channel, no access, per-user cap) or full (maxUsers).',
      ['result'],
    );
    for (const result of ['accepted', 'refused', 'full'])
      this.#updateChannels.inc({ result }, 0);
    this.#gets = counter('gets_total', 'GET /presence/get answers by result.', [
      'result',
    ]);
    for (const result of GET_RESULTS) this.#gets.inc({ result }, 0);
    this.#rateLimited = counter(
      'rate_limited_total',
      'Answers 429 (rate limited), by endpoint.',
      ['endpoint'],
    );
    this.#unavailable = counter(
      'unavailable_total',
      'Answers 503 (store unreachable), by endpoint.',
      ['endpoint'],
    );
    for (const endpoint of ENDPOINTS) {
      this.#rateLimited.inc({ endpoint }, 0);
      this.#unavailable.inc({ endpoint }, 0);
    }
    this.#pollAnswers = counter(
      'poll_answers_total',
      'Message-bus poll answers by mode (immediate, long_poll, stream) and result (messages, empty, error); a stream counts each chunk carrying messages and its end.',
      ['mode', 'result'],
    );
    for (const mode of ['immediate', 'long_poll', 'stream'])
      for (const result of ['messages', 'empty', 'error'])
        this.#pollAnswers.inc({ mode, result }, 0);
    this.#published = counter(
      'messages_published_total',
      'Messages this process published through the store, by source (present, leave, sweep, publish).',
      ['source'],
    );
    for (const source of ['present', 'leave', 'sweep', 'publish'])
      this.#published.inc({ source }, 0);

    this.#storeSeconds = new Histogram({
      name: `${METRIC_PREFIX}store_seconds`,
      help: 'Duration of each store call by operation; on Redis, the round trip(s) of the call.',
      labelNames: ['operation'],
      buckets: STORE_BUCKETS,
      registers,
    });
    this.#storeErrors = counter(
      'store_errors_total',
      'Store calls that failed, by operation.',
      ['operation'],
    );
    this.#sweepSeconds = new Histogram({
      name: `${METRIC_PREFIX}sweep_seconds`,
      help: 'Duration of each auto-leave sweep run by this process.',
      buckets: SWEEP_BUCKETS,
      registers,
    });
    this.#sweepLag = new Histogram({
      name: `${METRIC_PREFIX}sweep_lag_seconds`,
      help: 'For each sweep that removed clients: how long after its expiry the longest-waiting one was removed (and its leave published).',
      buckets: LAG_BUCKETS,
      registers,
    });
    this.#swept = counter(
      'swept_clients_total',
      'Clients removed by this process’s sweeps because their expiry passed.',
    );

    const clients = new Gauge({
      name: `${METRIC_PREFIX}clients`,
      help: 'Present clients over all channels of the deployment (a client in 3 channels counts 3 times).',
      registers,
      collect: () => this.#readCounts(),
    });
    const channels = new Gauge({
      name: `${METRIC_PREFIX}channels`,
      help: 'Presence channels of the deployment with at least one present client.',
      registers,
      collect: () => this.#readCounts(),
    });
    this.#countsFailures = new Counter({
      name: `${METRIC_PREFIX}counts_failures_total`,
      help: 'Scrapes whose read of the client and channel counts failed (the gauges kept their last value).',
      registers,
      // The same read as the gauges: so a failure shows in the scrape it happened in.
      collect: () => this.#readCounts(),
    });
    this.#setCounts = (counts) => {
      clients.set(counts.clients);
      channels.set(counts.channels);
    };
    const sources = (): MetricsSources | null => this.#sources;
    new Gauge({
      name: `${METRIC_PREFIX}held_polls`,
      help: 'Message-bus polls this process holds open, by mode (long_poll, stream).',
      labelNames: ['mode'],
      registers,
      collect() {
        const stats = sources()?.stats();
        this.set(
          { mode: 'long_poll' },
          stats ? stats.heldPolls - stats.streams : 0,
        );
        this.set({ mode: 'stream' }, stats?.streams ?? 0);
      },
    });

    this.#webhookEvents = counter(
      'webhook_events_total',
      'Join/leave events sent to webhook receivers: delivered (accepted by a receiver) or dropped (given up on).',
      ['result'],
    );
    this.#webhookEvents.inc({ result: 'delivered' }, 0);
    this.#webhookEvents.inc({ result: 'dropped' }, 0);
    this.#webhookDeliveries = counter(
      'webhook_deliveries_total',
      'Webhook POSTs accepted (2xx) by a receiver.',
    );
    this.#webhookRetries = counter(
      'webhook_retries_total',
      'Webhook POSTs that failed (network error, timeout, 5xx) and will be retried.',
    );
    this.#hookFailures = counter(
      'hook_failures_total',
      'In-process hook handlers that threw (error) or ran out of time (timeout).',
      ['kind'],
    );
    this.#hookFailures.inc({ kind: 'error' }, 0);
    this.#hookFailures.inc({ kind: 'timeout' }, 0);
  }

  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
  ): Counter<L> {
    if (!name.startsWith(METRIC_PREFIX)) {
      throw new TypeError(
        `ember-presence: metric names start with ${METRIC_PREFIX}, got "${name}"`,
      );
    }
    const existing = this.registry.getSingleMetric(name);
    if (existing instanceof Counter) return existing;
    return new Counter<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
    });
  }

  instrumentStore(store: PresenceStore): PresenceStore {
    // One timed function per method, made on first use; the store's own `this` is kept (private fields).
    const timed = new Map<string, { original: unknown; call: unknown }>();
    return new Proxy(store, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop) as unknown;
        if (typeof value !== 'function' || prop === 'constructor') return value;
        const key = typeof prop === 'string' ? prop : null;
        const cached = key === null ? undefined : timed.get(key);
        if (cached?.original === value) return cached.call;
        const fn = value as (...args: unknown[]) => unknown;
        const call =
          key === null || UNTIMED.has(key)
            ? fn.bind(target)
            : this.#timed(key, fn, target);
        if (key !== null) timed.set(key, { original: value, call });
        return call;
      },
    });
  }

  collectFrom(sources: MetricsSources): void {
    this.#sources = sources;
  }

  requestCounter(): RequestHandler {
    return (req, res, next) => {
      const endpoint = req.method === 'OPTIONS' ? null : endpointOf(req.path);
      if (endpoint)
        res.once('finish', () => this.#answered(endpoint, res.statusCode));
      next();
    };
  }

  updateAnswered(response: HandlerResponse): void {
    if (response.status !== 200) return;
    const body = response.body as Record<string, unknown>;
    const reasons = (body[UPDATE_REASONS_KEY] ?? {}) as Record<string, unknown>;
    for (const [name, accepted] of Object.entries(body)) {
      if (name === UPDATE_REASONS_KEY) continue;
      const result = accepted
        ? 'accepted'
        : reasons[name] === 'full'
          ? 'full'
          : 'refused';
      this.#updateChannels.inc({ result });
    }
  }

  pollAnswered(mode: PollAnswerMode, result: PollAnswerResult): void {
    this.#pollAnswers.inc({ mode, result });
  }

  async scrape(): Promise<string> {
    const own = await this.registry.metrics();
    if (!this.#processMetrics) return own;
    return `${own}\n${await processMetrics().metrics()}`;
  }

  handler(): RequestHandler {
    return async (_req, res) => {
      const text = await this.scrape();
      res
        .status(200)
        .set('Content-Type', this.contentType)
        .set('Cache-Control', 'no-store')
        .send(text);
    };
  }

  webhookDelivered(events: number): void {
    this.#webhookDeliveries.inc();
    this.#webhookEvents.inc({ result: 'delivered' }, events);
  }

  webhookRetried(): void {
    this.#webhookRetries.inc();
  }

  webhookDropped(events: number): void {
    this.#webhookEvents.inc({ result: 'dropped' }, events);
  }

  hookFailed(kind: 'error' | 'timeout'): void {
    this.#hookFailures.inc({ kind });
  }

  /** `fn` of `target`, timed and counted as `operation`. */
  #timed(
    operation: string,
    fn: (...args: unknown[]) => unknown,
    target: PresenceStore,
  ): (...args: unknown[]) => unknown {
    const settle = (started: number, value: unknown, failed: boolean): void => {
      const seconds = (performance.now() - started) / 1000;
      this.#storeSeconds.observe({ operation }, seconds);
      if (failed) this.#storeErrors.inc({ operation });
      else this.#record(operation, value, seconds);
    };
    // Named so that a stack trace shows the wrapper (the "metrics off installs nothing" test looks for it).
    return function instrumentedStoreCall(...args: unknown[]): unknown {
      const started = performance.now();
      let result: unknown;
      try {
        result = fn.apply(target, args);
      } catch (err) {
        settle(started, undefined, true);
        throw err;
      }
      if (!isPromiseLike(result)) {
        settle(started, result, false);
        return result;
      }
      return result.then(
        (value) => {
          settle(started, value, false);
          return value;
        },
        (err: unknown) => {
          settle(started, undefined, true);
          throw err;
        },
      );
    };
  }

  /** What a successful store call published or swept. */
  #record(operation: string, value: unknown, seconds: number): void {
    if (typeof value !== 'object' || value === null) return;
    switch (operation) {
      case 'present':
      case 'leave':
        if ((value as { message?: unknown }).message)
          this.#published.inc({ source: operation });
        return;
      case 'publish':
        this.#published.inc({ source: 'publish' });
        return;
      case 'sweep': {
        const { expiredClients, messages, lagMs } = value as {
          expiredClients?: unknown;
          messages?: unknown;
          lagMs?: unknown;
        };
        this.#sweepSeconds.observe(seconds);
        if (Array.isArray(messages) && messages.length > 0)
          this.#published.inc({ source: 'sweep' }, messages.length);
        if (typeof expiredClients === 'number' && expiredClients > 0) {
          this.#swept.inc(expiredClients);
          // Only sweeps that removed someone have a lag; zeros would drown the figure.
          if (typeof lagMs === 'number' && Number.isFinite(lagMs))
            this.#sweepLag.observe(Math.max(0, lagMs) / 1000);
        }
        return;
      }
      default:
    }
  }

  #answered(endpoint: Endpoint, status: number): void {
    const result = resultOf(status);
    if (endpoint === 'update') this.#updates.inc({ result });
    else if (endpoint === 'get') this.#gets.inc({ result });
    if (status === 429) this.#rateLimited.inc({ endpoint });
    if (status === 503) this.#unavailable.inc({ endpoint });
  }

  /** Refreshes the client and channel gauges: one `counts()` per scrape, whoever asks. */
  #readCounts(): Promise<void> {
    const sources = this.#sources;
    if (!sources) return Promise.resolve();
    this.#reading ??= withTimeout(
      Promise.resolve().then(() => sources.counts()),
      COUNTS_TIMEOUT_MS,
    )
      .then(this.#setCounts, (err: unknown) => {
        this.#countsFailures.inc();
        this.#logger.warn('metrics: reading the store counts failed', {
          error: describeError(err),
        });
      })
      .finally(() => {
        this.#reading = null;
      });
    return this.#reading;
  }
}

/** The endpoint a request path (relative to the presence router) belongs to, or `null`. */
function endpointOf(path: string): Endpoint | null {
  const normal = path.toLowerCase().replace(/\/+$/, '');
  if (normal === '/presence/update') return 'update';
  if (normal === '/presence/get') return 'get';
  if (normal.startsWith('/message-bus/')) return 'poll';
  if (normal === '/healthz') return 'health';
  return null;
}

/** The `result` label of an answer status. */
export function resultOf(status: number): RequestResult {
  if (status < 400) return 'ok';
  if (status === 429) return 'rate_limited';
  if (status === 503) return 'unavailable';
  if (status >= 500) return 'error';
  if (status === 401 || status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 413) return 'too_large';
  return 'bad_request';
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
