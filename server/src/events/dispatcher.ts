import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';

import { NO_EVENT_METRICS, type EventMetrics } from '../core/metrics-types.js';
import type {
  EventLog,
  PendingEvents,
  PresenceEvent,
  PresenceEventName,
} from '../core/store.js';
import { globalTimers, type Timers } from '../core/timers.js';
import type { Clock } from '../core/types.js';
import type { Logger } from '../http/logger.js';
import { describeError } from '../http/logger.js';

/** What `presence.on(name, handler)` calls: once per event in the deployment, in channel order. */
export type PresenceEventHandler = (
  event: PresenceEvent,
) => void | Promise<void>;

/** The event names `on` accepts. */
export const PRESENCE_EVENT_NAMES: readonly PresenceEventName[] = Object.freeze(
  ['member_added', 'member_removed', 'channel_occupied', 'channel_vacated'],
);

/** Where events go after the hooks (the webhooks); resolves once delivered or given up. */
export interface EventSink {
  deliver(events: readonly PresenceEvent[], signal: AbortSignal): Promise<void>;
}

/** Options of {@link EventDispatcher}. */
export interface EventDispatcherOptions {
  log: EventLog;
  clock: Clock;
  logger: Logger;
  /** Webhooks (or any sink after the hooks). */
  sink?: EventSink | null;
  metrics?: EventMetrics;
  timers?: Timers;
  /** How often owned shards are read for due events. Default 250 ms. */
  pollMs?: number;
  /** How long a shard lease lasts without renewal (renewed every third of it). Default 15 s. */
  leaseMs?: number;
  /** A hook handler running longer is left behind (logged, counted) and the next one runs. Default 5 s. */
  hookTimeoutMs?: number;
  /** Channels, and events per channel, read per shard and round. Default 100 and 100. */
  batchChannels?: number;
  batchEvents?: number;
}

/** `work`, or a rejection as soon as `signal` aborts (the work itself goes on, unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('stopped'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('stopped'));
    signal.addEventListener('abort', onAbort, { once: true });
    work
      .then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Every process re-reads whether events are consumed this often (so they record within 5 s). */
export const RECORDING_REFRESH_MS = 5000;
/** A consumer announces itself this often, for this long. */
const ANNOUNCE_EVERY_MS = 20_000;
const ANNOUNCE_TTL_MS = 60_000;

function positive(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  const result = value ?? fallback;
  if (!Number.isFinite(result) || result <= 0)
    throw new TypeError(
      `${name} must be a positive number of ms, got ${String(value)}`,
    );
  return result;
}

/**
 * Delivers join/leave events to in-process hooks and a sink (the webhooks), exactly once per event in the
 * deployment while nothing crashes, and at least once when something does:
 *
 * - every process (consumer or not) re-reads every {@link RECORDING_REFRESH_MS} whether some process
 *   consumes events, and then records them with its state changes (see `EventLog`);
 * - a consumer (a process with a hook or a sink) announces itself, leases index shards (one process per
 *   shard at a time), reads the due events of its shards, calls the hooks in order, hands the events to the
 *   sink, and acknowledges them only then. A process killed anywhere in between stops renewing its leases;
 *   whoever takes a shard next reads its unacknowledged events again (same ids: receivers de-duplicate).
 * - Per channel, events are handed over in order, and a shard's next batch waits for the previous one
 *   (a receiver that fails holds back its shard's events, in order, while the sink retries).
 */
export class EventDispatcher {
  readonly owner = randomBytes(12).toString('hex');
  readonly #log: EventLog;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #sink: EventSink | null;
  readonly #metrics: EventMetrics;
  readonly #timers: Timers;
  readonly #pollMs: number;
  readonly #leaseMs: number;
  readonly #hookTimeoutMs: number;
  readonly #batchChannels: number;
  readonly #batchEvents: number;
  readonly #handlers = new Map<PresenceEventName, Set<PresenceEventHandler>>();
  /** Shards this process holds the lease of. */
  readonly #owned = new Set<number>();
  /** Shards with a batch in flight (delivering or retrying). */
  readonly #busy = new Map<number, Promise<void>>();
  #abort = new AbortController();
  #timer: unknown = null;
  #tick: Promise<void> | null = null;
  #running = false;
  #nextRefresh = -Infinity;
  #nextAnnounce = -Infinity;
  #nextLease = -Infinity;
  #delivered = 0;

  constructor(options: EventDispatcherOptions) {
    this.#log = options.log;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#sink = options.sink ?? null;
    this.#metrics = options.metrics ?? NO_EVENT_METRICS;
    this.#timers = options.timers ?? globalTimers;
    this.#pollMs = positive(options.pollMs, 250, 'pollMs');
    this.#leaseMs = positive(options.leaseMs, 15_000, 'leaseMs');
    this.#hookTimeoutMs = positive(
      options.hookTimeoutMs,
      5000,
      'hookTimeoutMs',
    );
    this.#batchChannels = positive(options.batchChannels, 100, 'batchChannels');
    this.#batchEvents = positive(options.batchEvents, 100, 'batchEvents');
  }

  /** Whether this process delivers events (it has a hook or a sink). */
  get consuming(): boolean {
    return this.#sink !== null || this.#handlers.size > 0;
  }

  /** Events handed to the hooks and the sink so far by this process. */
  get delivered(): number {
    return this.#delivered;
  }

  /**
   * Calls `handler` for every event `name` in the deployment (see {@link EventDispatcher}). Returns a
   * function that removes it. A handler that throws or rejects is logged and counted; one that runs longer
   * than `hookTimeoutMs` is left to finish on its own while the next events go on.
   */
  on(name: PresenceEventName, handler: PresenceEventHandler): () => void {
    if (!PRESENCE_EVENT_NAMES.includes(name))
      throw new TypeError(
        `unknown presence event ${JSON.stringify(name)}: use one of ${PRESENCE_EVENT_NAMES.join(', ')}`,
      );
    if (typeof handler !== 'function')
      throw new TypeError(`the handler of ${name} must be a function`);
    let set = this.#handlers.get(name);
    if (!set) this.#handlers.set(name, (set = new Set()));
    set.add(handler);
    // Becoming a consumer takes effect at once (this process records from now on), not at the next round.
    this.#announce();
    this.#nextLease = -Infinity;
    // A process without consumers only looks every 5 s: start delivering now.
    if (this.#timer !== null && this.#tick === null) {
      this.#timers.clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#schedule(0);
    return () => {
      set.delete(handler);
      if (set.size === 0) this.#handlers.delete(name);
    };
  }

  /** Starts the rounds (a no-op when running). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    // Every batch in flight (one per shard) and its retry waits listen to it; each removes its listener.
    setMaxListeners(0, this.#abort.signal);
    if (this.consuming) this.#announce();
    this.#schedule(0);
  }

  /**
   * Declares this process a consumer now: the store records events from this call on (synchronously),
   * and the other processes within {@link RECORDING_REFRESH_MS}.
   */
  #announce(): void {
    const now = Math.floor(this.#clock());
    this.#nextAnnounce = now + ANNOUNCE_EVERY_MS;
    this.#log.announceConsumer(now, ANNOUNCE_TTL_MS).catch((error: unknown) => {
      this.#nextAnnounce = -Infinity; // the next round tries again
      this.#logger.warn(
        'could not announce this process as an event consumer',
        {
          error: describeError(error),
        },
      );
    });
  }

  /**
   * Stops: waits for the round in progress, abandons batches still retrying (their events stay
   * unacknowledged, for the next holder of the shard), gives the leases up so another process takes over
   * at once, and stops announcing.
   */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (this.#timer !== null) this.#timers.clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort.abort();
    await this.#tick;
    await Promise.allSettled([...this.#busy.values()]);
    const now = this.#clock();
    await Promise.allSettled(
      [...this.#owned].map((shard) =>
        this.#log.lease(shard, this.owner, this.#leaseMs, now, true),
      ),
    );
    this.#owned.clear();
    await this.#log.withdrawConsumer().catch(() => undefined);
  }

  /** One round now (tests drive the dispatcher with it); resolves when its batches are handed over. */
  async runOnce(): Promise<void> {
    await this.#round();
    await Promise.allSettled([...this.#busy.values()]);
  }

  #schedule(ms: number): void {
    if (!this.#running || this.#timer !== null) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = null;
      this.#tick = this.#round()
        .catch((error: unknown) => {
          this.#logger.warn('presence event round failed; retrying', {
            error: describeError(error),
          });
        })
        .finally(() => {
          this.#tick = null;
          // Without hooks or webhooks there is nothing to deliver: only the recording flag to re-read.
          this.#schedule(this.consuming ? this.#pollMs : RECORDING_REFRESH_MS);
        });
    }, ms);
  }

  async #round(): Promise<void> {
    const now = Math.floor(this.#clock());
    if (now >= this.#nextRefresh) {
      this.#nextRefresh = now + RECORDING_REFRESH_MS;
      await this.#log.refreshRecording(now);
    }
    if (!this.consuming) {
      if (this.#owned.size > 0) await this.#releaseAll(now);
      return;
    }
    if (now >= this.#nextAnnounce) {
      await this.#log.announceConsumer(now, ANNOUNCE_TTL_MS);
      this.#nextAnnounce = now + ANNOUNCE_EVERY_MS;
    }
    if (now >= this.#nextLease) {
      this.#nextLease = now + this.#leaseMs / 3;
      await this.#renewLeases(now);
    }
    for (const shard of this.#owned) {
      if (this.#busy.has(shard)) continue;
      const batch = this.#shardBatch(shard, now).finally(() =>
        this.#busy.delete(shard),
      );
      this.#busy.set(shard, batch);
    }
  }

  async #renewLeases(now: number): Promise<void> {
    const held = await Promise.all(
      Array.from({ length: this.#log.shards }, (_, shard) =>
        this.#log.lease(shard, this.owner, this.#leaseMs, now),
      ),
    );
    const before = [...this.#owned].sort((a, b) => a - b).join(',');
    held.forEach((isHeld, shard) => {
      if (isHeld) this.#owned.add(shard);
      else this.#owned.delete(shard);
    });
    const after = [...this.#owned].sort((a, b) => a - b);
    // Operators see who delivers which share of the events (and when a process took over a dead one's).
    if (after.join(',') !== before)
      this.#logger.info('delivering presence events', {
        shards: after,
        of: this.#log.shards,
        owner: this.owner,
      });
  }

  async #releaseAll(now: number): Promise<void> {
    const shards = [...this.#owned];
    this.#owned.clear();
    await Promise.all(
      shards.map((shard) =>
        this.#log.lease(shard, this.owner, this.#leaseMs, now, true),
      ),
    );
  }

  /** Reads, delivers and acknowledges one batch of a shard. Failures are logged; the next round retries. */
  async #shardBatch(shard: number, now: number): Promise<void> {
    const signal = this.#abort.signal;
    try {
      const pending: PendingEvents[] = await this.#log.readDue(
        shard,
        now,
        this.#batchChannels,
        this.#batchEvents,
      );
      if (pending.length === 0) return;
      const events = pending.flatMap((entry) => entry.events);
      if (events.length > 0) {
        await this.#callHooks(events, signal);
        // A sink ought to give up when told to; a stop does not wait for one that does not.
        if (this.#sink)
          await untilAborted(this.#sink.deliver(events, signal), signal);
        this.#delivered += events.length;
      }
      // Abandoned (stopping): leave the events for the next holder of the shard.
      if (signal.aborted) return;
      await this.#log.ack(shard, pending, Math.floor(this.#clock()));
    } catch (error) {
      if (signal.aborted) return;
      this.#logger.warn('presence events could not be delivered; retrying', {
        shard,
        error: describeError(error),
      });
    }
  }

  async #callHooks(
    events: readonly PresenceEvent[],
    signal: AbortSignal,
  ): Promise<void> {
    for (const event of events) {
      const handlers = this.#handlers.get(event.name);
      if (!handlers) continue;
      for (const handler of [...handlers]) {
        if (signal.aborted) return;
        await this.#callHook(handler, event);
      }
    }
  }

  async #callHook(
    handler: PresenceEventHandler,
    event: PresenceEvent,
  ): Promise<void> {
    let timer: unknown = null;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = this.#timers.setTimeout(
        () => resolve('timeout'),
        this.#hookTimeoutMs,
      );
    });
    try {
      // A frozen copy per call: one handler cannot change what the next one (or the webhook) sees.
      const outcome = await Promise.race([
        Promise.resolve().then(() => handler(Object.freeze({ ...event }))),
        timedOut,
      ]);
      if (outcome === 'timeout') {
        this.#metrics.hookFailed('timeout');
        this.#logger.warn(
          'presence event hook timed out; going on with the next',
          {
            event: event.name,
            event_id: event.id,
            timeout_ms: this.#hookTimeoutMs,
          },
        );
      }
    } catch (error) {
      this.#metrics.hookFailed('error');
      this.#logger.error('presence event hook failed', {
        event: event.name,
        event_id: event.id,
        error: describeError(error),
      });
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }
}
