import { consoleLogger, type Logger } from '../logger.js';
import { asError } from '../errors.js';
import type { PresenceStore } from '../store.js';
import { storeArgs } from '../store-args.js';
import type { Audience, BusMessage, Clock } from '../types.js';
import { isAudienceMember, type BusRequester } from './audience.js';
import type { PollRequest } from './poll-request.js';
import { publishHostMessage } from './publish.js';
import { SubscriptionHub } from './subscription-hub.js';
import { globalTimers, type BusTimers } from './timer.js';
import {
  measuredWireMessage,
  sharedWireMessage,
  statusMessage,
  toWireMessage,
  utf8Length,
  type WireMessage,
} from './wire.js';

/**
 * The MessageBus semantics of docs/protocol.md §6 over a {@link PresenceStore}, independent of any transport: the
 * Express router (long polling, streaming) and the in-browser fake server both drive this class.
 *
 * - {@link MessageBus.publish} appends a message to a channel's backlog and wakes every follower, in every
 *   process (the store fans out).
 * - {@link MessageBus.poll} answers a poll from the backlog at once, applying every last-id rule, the
 *   audience filter and the `/__status` rules, and returns the cursor to wait from.
 * - {@link MessageBus.watch} / {@link MessageBus.wait} follow the cursor for long polling.
 *
 * @example
 * const bus = new MessageBus({ store });
 * await bus.publish('/chat/1', { text: 'hi' }, { userIds: [1, 2] });
 * const { messages, cursor } = await bus.poll(request, { clientId, user });
 * const more = messages.length > 0 ? messages : await bus.wait(cursor, { clientId, user }, { timeoutMs: 25_000 });
 */

/** Options of {@link MessageBus}. */
export interface MessageBusOptions {
  store: PresenceStore;
  /** Time source for `publish` (ms since epoch). Default `Date.now`. */
  clock?: Clock;
  /** Timers for {@link MessageBus.wait} timeouts. Default: the global timers, `unref`'d. */
  timers?: BusTimers;
  /** Where failures of background work (subscriptions, catch-up reads) are reported. */
  logger?: Logger;
  /**
   * May `requester` follow `channel` at all? A channel answered `false` behaves exactly like a channel that
   * has never had a message (last id 0, nothing delivered, never woken), so a forbidden channel cannot be
   * told apart from an unknown one by its ids. Only `true` allows. A throw rejects the whole poll (the
   * router answers 503). Default: every channel may be followed; per-message audiences still apply.
   */
  canFollow?: (
    channel: string,
    requester: BusRequester,
  ) => boolean | Promise<boolean>;
  /**
   * Most messages in one poll answer ({@link DEFAULT_MAX_MESSAGES_PER_POLL}); the rest follows on the
   * next poll, which the client sends at once. Shared out between the channels read, so every channel
   * moves on each poll.
   */
  maxMessagesPerPoll?: number;
  /**
   * Most bytes (UTF-8, as sent) of messages in one poll answer ({@link DEFAULT_MAX_BYTES_PER_POLL}); the
   * rest follows.
   */
  maxBytesPerPoll?: number;
}

/**
 * 500 messages per poll answer: one anonymous poll asking 200 channels with full backlogs from id 0 would
 * otherwise read and send 200,000 messages (tens of MB) at once, blocking the store for seconds.
 */
export const DEFAULT_MAX_MESSAGES_PER_POLL = 500;

/** 512 KiB of messages per poll answer, however large the messages are. */
export const DEFAULT_MAX_BYTES_PER_POLL = 512 * 1024;

/** What {@link MessageBus.poll} answers. */
export interface PollResult {
  /** Messages to send now (the `/__status` entry last, if any). Empty → nothing to say yet. */
  messages: WireMessage[];
  /**
   * The answer was cut at the per-poll cap: more messages are waiting after `cursor`. Answer at once
   * (never hold or stream it); the client's next poll, sent at once, continues.
   */
  truncated: boolean;
  /**
   * Channel → last id the client will have seen once it processed `messages`: where to wait from. Only
   * channels the requester may follow.
   */
  cursor: Record<string, number>;
}

/** A live {@link MessageBus.watch}. */
export interface BusWatch {
  /** Stops following; idempotent; nothing is delivered afterwards. */
  close(): void;
  /**
   * A `/__status` entry for channels whose messages were all filtered out for this requester since the last
   * delivery (so the client can skip past them), or `null`. Send it when the poll ends without messages.
   */
  skippedStatus(): WireMessage | null;
}

/** Options of {@link MessageBus.wait}. */
export interface WaitOptions {
  /** Give up after this long and resolve with `[]` (or a status entry for filtered messages). */
  timeoutMs: number;
  /** Aborting resolves with `[]` at once and releases everything. */
  signal?: AbortSignal;
}

/** Counters for tests and monitoring. */
export interface MessageBusStats {
  /** Channels with a live store subscription. */
  subscribedChannels: number;
  /** Listeners on those subscriptions (one per held poll and channel). */
  listeners: number;
  /** Open watches (held polls). */
  watches: number;
}

/** See the module documentation above. */
export class MessageBus {
  readonly #store: PresenceStore;
  readonly #clock: Clock;
  readonly #timers: BusTimers;
  readonly #logger: Logger;
  readonly #canFollow: MessageBusOptions['canFollow'];
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #hub: SubscriptionHub;
  readonly #watches = new Set<Watch>();

  constructor(options: MessageBusOptions) {
    if (!options || typeof options.store?.subscribe !== 'function') {
      throw new TypeError(
        'new MessageBus({ store }): `store` must be a PresenceStore (MemoryStore or RedisStore)',
      );
    }
    this.#store = options.store;
    this.#clock = options.clock ?? Date.now;
    this.#timers = options.timers ?? globalTimers;
    this.#logger = options.logger ?? consoleLogger;
    this.#canFollow = options.canFollow;
    this.#maxMessages = storeArgs.count(
      options.maxMessagesPerPoll ?? DEFAULT_MAX_MESSAGES_PER_POLL,
      'maxMessagesPerPoll',
    );
    this.#maxBytes = storeArgs.count(
      options.maxBytesPerPoll ?? DEFAULT_MAX_BYTES_PER_POLL,
      'maxBytesPerPoll',
    );
    this.#hub = new SubscriptionHub(this.#store, (error, channel) =>
      this.#logger.error('message bus subscription failed', { channel, error }),
    );
  }

  /** The store behind this bus. */
  get store(): PresenceStore {
    return this.#store;
  }

  /**
   * Publishes `data` on `channel` for host code (the bus is useful beyond presence), by the one rule of
   * {@link publishHostMessage}: a pollable bus channel outside `/presence/…`, and a JSON value (stored as
   * its JSON copy, so later mutations of the object do not leak into the backlog). The audience restricts
   * who receives it (see {@link isAudienceMember}); omit it for everyone following the channel.
   *
   * @example await bus.publish('/notifications/7', { unread: 3 }, { userIds: [7] });
   * @throws {TypeError} for an invalid channel name, non-JSON data or a malformed audience.
   */
  publish(
    channel: string,
    data: unknown,
    audience?: Audience | null,
  ): Promise<BusMessage> {
    return publishHostMessage(
      this.#store,
      channel,
      data,
      audience,
      this.#clock(),
    );
  }

  /**
   * Answers a poll from the backlog, at once. Per channel (docs/protocol.md §6):
   * - `null` → nothing now; wait from the current last id;
   * - `-1`, or an id beyond the channel's last id (the backlog was reset) → a `/__status` entry with the
   *   current last id;
   * - `-N` (N > 1) → the last N−1 messages; `0` → the whole backlog; `k > 0` → messages with id > k.
   * Messages outside the requester's audience are left out; when that happens the status entry tells the
   * client the id to continue from, so it does not ask for them again. Status ids never move a client
   * backwards: they are the newest id examined on that channel.
   *
   * @throws whatever the store or `canFollow` throws (e.g. Redis unreachable); callers answer 503.
   */
  async poll(
    request: PollRequest,
    requester: BusRequester,
  ): Promise<PollResult> {
    const allowed = await this.#followable(request, requester);
    const status: Record<string, number> = {};
    const cursor: Record<string, number> = {};
    for (const { channel, lastId } of request.positions) {
      // A channel the requester may not follow looks like one that never had a message.
      if (
        !allowed.has(channel) &&
        (lastId === -1 || (lastId !== null && lastId > 0))
      )
        status[channel] = 0;
    }
    const followed = request.positions.filter(({ channel }) =>
      allowed.has(channel),
    );
    const lastIds =
      followed.length > 0
        ? await this.#store.lastIds(followed.map(({ channel }) => channel))
        : {};

    const reads: Array<{ channel: string; from: number; last: number }> = [];
    for (const { channel, lastId } of followed) {
      const last = toId(lastIds[channel]);
      if (lastId === null) {
        cursor[channel] = last;
      } else if (lastId === -1 || lastId > last) {
        cursor[channel] = last;
        status[channel] = last;
      } else {
        // -N replays the last N-1 messages: continue after id last-(N-1).
        const from = lastId < -1 ? Math.max(0, last + lastId + 1) : lastId;
        if (from < last) reads.push({ channel, from, last });
        else cursor[channel] = last;
      }
    }

    // One poll answer is bounded: each channel read gets its share of the message cap, and the answer
    // stops at the byte cap. A channel cut short continues from its last delivered id on the next poll.
    const perChannel = Math.max(
      1,
      Math.floor(this.#maxMessages / Math.max(1, reads.length)),
    );
    const backlogs = await Promise.all(
      reads.map(({ channel, from }) =>
        this.#store.backlog(channel, from, perChannel),
      ),
    );
    const messages: WireMessage[] = [];
    let bytes = 2; // the array's brackets
    let truncated = false;
    reads.forEach(({ channel, from, last }, index) => {
      let position = from;
      let filtered = false;
      let cut = false;
      const read = backlogs[index] ?? [];
      for (const message of read) {
        if (message.channel !== channel || message.message_id <= position)
          continue;
        if (isAudienceMember(message, requester)) {
          // Serialised here, once: the answer is later written from this same JSON.
          const { wire, json } = measuredWireMessage(message);
          // Its bytes on the wire, plus the comma that separates it from the previous one.
          const size = utf8Length(json) + 1;
          if (messages.length > 0 && bytes + size > this.#maxBytes) {
            cut = true;
            break;
          }
          bytes += size;
          messages.push(wire);
        } else filtered = true;
        position = message.message_id;
      }
      if (!cut && read.length >= perChannel && position < last) cut = true;
      if (cut) {
        // More after `position`: continue from exactly there.
        truncated = true;
        cursor[channel] = position;
      } else {
        // Messages trimmed from a capped backlog are gone for good: continue from the newest id.
        cursor[channel] = Math.max(position, last);
      }
      if (filtered) status[channel] = cursor[channel];
    });
    if (Object.keys(status).length > 0) messages.push(statusMessage(status));
    return { messages, cursor, truncated };
  }

  /**
   * Follows `cursor` (from {@link poll}) and calls `onMessages` with each batch of new messages the
   * requester may see, in id order per channel, until `close()`. It subscribes first and then re-reads
   * the last ids, so a message published between the poll and the subscription is not lost; a gap in the
   * ids (a missed notification) is filled from the backlog. Filtered messages advance the cursor silently
   * and surface as a status entry with the next batch, or through `skippedStatus()`.
   *
   * `onError` receives store failures after the watch started (the caller should end the poll);
   * subscription failures reject the returned promise.
   */
  async watch(
    cursor: Readonly<Record<string, number>>,
    requester: BusRequester,
    onMessages: (messages: WireMessage[]) => void,
    onError: (error: unknown) => void = () => {},
  ): Promise<BusWatch> {
    const watch = new Watch(
      this.#store,
      cursor,
      requester,
      onMessages,
      onError,
      (closed) => this.#watches.delete(closed),
    );
    this.#watches.add(watch);
    try {
      const release = await this.#hub.add(Object.keys(cursor), watch.listener);
      watch.attach(release);
    } catch (error) {
      watch.close();
      throw error;
    }
    return watch;
  }

  /**
   * Waits for the first batch of new messages after `cursor`, or resolves with `[]` (or a status entry for
   * filtered messages) after `timeoutMs`, or with `[]` when `signal` aborts. Everything is released when
   * it settles. A long poll in one call, for transports that answer once (the fake server, host code).
   */
  wait(
    cursor: Readonly<Record<string, number>>,
    requester: BusRequester,
    options: WaitOptions,
  ): Promise<WireMessage[]> {
    return new Promise<WireMessage[]>((resolve, reject) => {
      let watch: BusWatch | null = null;
      let settled = false;
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        cancelTimer();
        options.signal?.removeEventListener('abort', onAbort);
        watch?.close();
        outcome();
      };
      const onAbort = (): void => settle(() => resolve([]));
      const timer = this.#timers.setTimeout(() => {
        const status = watch?.skippedStatus() ?? null;
        settle(() => resolve(status ? [status] : []));
      }, options.timeoutMs);
      const cancelTimer = (): void => this.#timers.clearTimeout(timer);
      if (options.signal?.aborted) {
        onAbort();
        return;
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.watch(
        cursor,
        requester,
        (messages) => settle(() => resolve(messages)),
        (error) => settle(() => reject(asError(error))),
      ).then(
        (started) => {
          if (settled) started.close();
          else watch = started;
        },
        (error: unknown) => settle(() => reject(asError(error))),
      );
    });
  }

  /** Current counters (held polls, subscriptions, listeners). */
  stats(): MessageBusStats {
    const hub = this.#hub.stats();
    return {
      subscribedChannels: hub.channels,
      listeners: hub.listeners,
      watches: this.#watches.size,
    };
  }

  /** Closes every watch and store subscription of this bus. The store itself stays open (it is shared). */
  async close(): Promise<void> {
    for (const watch of [...this.#watches]) watch.close();
    await this.#hub.close();
  }

  async #followable(
    request: PollRequest,
    requester: BusRequester,
  ): Promise<Set<string>> {
    const channels = request.positions.map(({ channel }) => channel);
    const canFollow = this.#canFollow;
    if (!canFollow) return new Set(channels);
    // A throw (typically the store behind the config lookup being down) fails the whole poll, which the
    // router answers 503: nothing is revealed, and the client retries instead of trusting a fake "0".
    const verdicts = await Promise.all(
      channels.map(
        async (channel) => (await canFollow(channel, requester)) === true,
      ),
    );
    return new Set(channels.filter((_, index) => verdicts[index]));
  }
}

/** A store id, defensively: anything but a non-negative integer counts as "no messages". */
function toId(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0
    ? value
    : 0;
}

/** One followed cursor (see {@link MessageBus.watch}). */
class Watch implements BusWatch {
  readonly #store: PresenceStore;
  readonly #positions: Map<string, number>;
  readonly #requester: BusRequester;
  readonly #onMessages: (messages: WireMessage[]) => void;
  readonly #onError: (error: unknown) => void;
  readonly #onClose: (watch: Watch) => void;
  /** Channels whose filtered messages the client has not been told about yet. */
  readonly #skipped = new Set<string>();
  /** Notifications that arrived while a backlog read was in flight, in arrival order. */
  #pending: BusMessage[] = [];
  /** A backlog read is in flight; notifications queue in `#pending` (true until the start catch-up ran). */
  #busy = true;
  #release: (() => void) | null = null;
  #closed = false;

  constructor(
    store: PresenceStore,
    cursor: Readonly<Record<string, number>>,
    requester: BusRequester,
    onMessages: (messages: WireMessage[]) => void,
    onError: (error: unknown) => void,
    onClose: (watch: Watch) => void,
  ) {
    this.#store = store;
    this.#positions = new Map(Object.entries(cursor));
    this.#requester = requester;
    this.#onMessages = onMessages;
    this.#onError = onError;
    this.#onClose = onClose;
  }

  /** The store listener; arrow so it can be registered and removed by identity. */
  readonly listener = (message: BusMessage): void => {
    if (this.#closed) return;
    const position = this.#positions.get(message.channel);
    if (position === undefined || message.message_id <= position) return;
    if (this.#busy) {
      this.#pending.push(message);
      return;
    }
    if (message.message_id === position + 1) {
      const batch: WireMessage[] = [];
      this.#accept(message, batch, true);
      this.#flush(batch);
    } else {
      void this.#catchUp([message.channel], false);
    }
  };

  /** Called once the subscription is live: re-check the last ids to close the poll→subscribe race. */
  attach(release: () => void): void {
    if (this.#closed) {
      release();
      return;
    }
    this.#release = release;
    void this.#catchUp([...this.#positions.keys()], true);
  }

  skippedStatus(): WireMessage | null {
    if (this.#skipped.size === 0) return null;
    const status: Record<string, number> = {};
    for (const channel of this.#skipped)
      status[channel] = this.#positions.get(channel) ?? 0;
    return statusMessage(status);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.#release?.();
    this.#release = null;
    this.#onClose(this);
  }

  /**
   * Reads the backlog of `channels` after their positions and delivers what is new, then drains the
   * notifications that queued meanwhile; repeats while those reveal further gaps. `checkLastIds` first asks
   * the store which channels moved at all (the start of a watch), to read only those backlogs.
   */
  async #catchUp(channels: string[], checkLastIds: boolean): Promise<void> {
    this.#busy = true;
    try {
      let todo = channels;
      if (checkLastIds && todo.length > 0) {
        const lastIds = await this.#store.lastIds(todo);
        todo = todo.filter(
          (channel) =>
            toId(lastIds[channel]) > (this.#positions.get(channel) ?? 0),
        );
      }
      while (!this.#closed) {
        const batch: WireMessage[] = [];
        if (todo.length > 0) {
          const backlogs = await Promise.all(
            todo.map((channel) =>
              this.#store.backlog(channel, this.#positions.get(channel) ?? 0),
            ),
          );
          if (this.#closed) return;
          todo.forEach((channel, index) => {
            for (const message of backlogs[index] ?? []) {
              if (
                message.channel !== channel ||
                message.message_id <= (this.#positions.get(channel) ?? 0)
              )
                continue;
              this.#accept(message, batch, false);
            }
          });
        }
        const gaps = new Set<string>();
        for (const message of this.#pending.splice(0)) {
          const position = this.#positions.get(message.channel);
          if (
            position === undefined ||
            message.message_id <= position ||
            gaps.has(message.channel)
          )
            continue;
          if (message.message_id === position + 1)
            this.#accept(message, batch, true);
          else gaps.add(message.channel);
        }
        this.#flush(batch);
        if (gaps.size === 0) break;
        todo = [...gaps];
      }
    } catch (error) {
      if (!this.#closed) this.#onError(error);
    } finally {
      this.#busy = false;
    }
  }

  /**
   * `notified`: `message` is the store's notification, one object handed to every watch of its channel, so
   * its wire form (and serialisation) is shared; a backlog read is this watch's own copy.
   */
  #accept(message: BusMessage, batch: WireMessage[], notified: boolean): void {
    this.#positions.set(message.channel, message.message_id);
    if (isAudienceMember(message, this.#requester)) {
      batch.push(
        notified ? sharedWireMessage(message) : toWireMessage(message),
      );
    } else {
      this.#skipped.add(message.channel);
    }
  }

  #flush(batch: WireMessage[]): void {
    if (batch.length === 0 || this.#closed) return;
    const status = this.skippedStatus();
    if (status) batch.push(status);
    this.#skipped.clear();
    this.#onMessages(batch);
  }
}
