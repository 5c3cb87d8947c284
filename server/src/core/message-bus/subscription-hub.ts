import type { BusListener, PresenceStore } from '../store.js';
import type { BusMessage } from '../types.js';

/**
 * Reference-counted store subscriptions: the bus follows a channel only while at least one listener (a
 * held poll) waits on it, with one `store.subscribe` per channel however many polls wait on it. The store
 * itself shares one connection per process (sharded pub/sub on Redis), so this keeps the set of
 * subscribed channels exactly the set that held polls need, and releases it when they end.
 */

interface ChannelEntry {
  listeners: Set<BusListener>;
  /** Settles when the store subscription is live (or failed). */
  ready: Promise<void>;
  /** The store's stop function, once subscribed. */
  stop: (() => Promise<void>) | null;
  /** Why subscribing failed, if it did. */
  failure: unknown;
}

/** Counters for tests and monitoring. */
export interface SubscriptionHubStats {
  /** Channels with a live (or starting) store subscription. */
  channels: number;
  /** Listeners registered across all channels. */
  listeners: number;
}

/** Reference-counted, per-channel store subscriptions (see module doc). */
export class SubscriptionHub {
  readonly #store: PresenceStore;
  readonly #entries = new Map<string, ChannelEntry>();
  /** Unsubscribes still in flight, so `close()` can wait for them. */
  readonly #stopping = new Set<Promise<void>>();
  #onError: (error: unknown, channel: string) => void;

  constructor(
    store: PresenceStore,
    onError: (error: unknown, channel: string) => void = () => {},
  ) {
    this.#store = store;
    this.#onError = onError;
  }

  /**
   * Calls `listener` for every message published on `channels` from the moment the returned promise
   * resolves (messages may also arrive a little earlier). Resolves to the release function, which is
   * idempotent and synchronous for the caller: the store unsubscribe happens in the background.
   * Rejects (after releasing what it took) when the store cannot subscribe.
   */
  async add(
    channels: readonly string[],
    listener: BusListener,
  ): Promise<() => void> {
    const taken: string[] = [];
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      for (const channel of taken) this.#removeListener(channel, listener);
    };
    for (const channel of new Set(channels)) {
      let entry = this.#entries.get(channel);
      if (!entry) entry = this.#subscribe(channel);
      entry.listeners.add(listener);
      taken.push(channel);
    }
    const entries = taken.map((channel) => this.#entries.get(channel)!);
    await Promise.all(entries.map((entry) => entry.ready));
    const failed = entries.find((entry) => entry.failure !== undefined);
    if (failed) {
      release();
      throw failed.failure instanceof Error
        ? failed.failure
        : new Error(String(failed.failure));
    }
    return release;
  }

  /** Current counters. */
  stats(): SubscriptionHubStats {
    let listeners = 0;
    for (const entry of this.#entries.values())
      listeners += entry.listeners.size;
    return { channels: this.#entries.size, listeners };
  }

  /** Drops every listener and waits for every store unsubscribe to finish. */
  async close(): Promise<void> {
    const entries = [...this.#entries];
    for (const [channel, entry] of entries) {
      entry.listeners.clear();
      this.#drop(channel, entry);
    }
    // Subscriptions still starting stop themselves in their `ready` handler; wait for that first.
    await Promise.all(entries.map(([, entry]) => entry.ready));
    await Promise.all([...this.#stopping]);
  }

  #subscribe(channel: string): ChannelEntry {
    const entry: ChannelEntry = {
      listeners: new Set(),
      ready: Promise.resolve(),
      stop: null,
      failure: undefined,
    };
    const dispatch = (message: BusMessage): void => {
      // A store may deliver more than asked (one shared connection); only this channel's listeners care.
      if (message.channel !== channel) return;
      for (const listener of [...entry.listeners]) {
        try {
          listener(message);
        } catch (error) {
          this.#onError(error, channel);
        }
      }
    };
    entry.ready = this.#store.subscribe([channel], dispatch).then(
      (stop) => {
        entry.stop = stop;
        // Everyone left while the subscription was starting: stop it now.
        if (this.#entries.get(channel) !== entry)
          this.#stopEntry(channel, entry);
      },
      (error: unknown) => {
        entry.failure = error ?? new Error(`subscribing to ${channel} failed`);
        if (this.#entries.get(channel) === entry) this.#entries.delete(channel);
        this.#onError(error, channel);
      },
    );
    this.#entries.set(channel, entry);
    return entry;
  }

  #removeListener(channel: string, listener: BusListener): void {
    const entry = this.#entries.get(channel);
    if (!entry) return;
    entry.listeners.delete(listener);
    if (entry.listeners.size === 0) this.#drop(channel, entry);
  }

  #drop(channel: string, entry: ChannelEntry): void {
    if (this.#entries.get(channel) === entry) this.#entries.delete(channel);
    // Not subscribed yet: the `ready` handler stops it once the store answers.
    if (entry.stop) this.#stopEntry(channel, entry);
  }

  #stopEntry(channel: string, entry: ChannelEntry): void {
    const stop = entry.stop;
    entry.stop = null;
    if (!stop) return;
    const stopping = stop().catch((error: unknown) =>
      this.#onError(error, channel),
    );
    this.#stopping.add(stopping);
    void stopping.finally(() => this.#stopping.delete(stopping));
  }
}
