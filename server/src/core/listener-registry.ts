import type { BusListener } from './store.js';
import { storeArgs } from './store-args.js';
import type { BusMessage } from './types.js';

/**
 * The `subscribe` listeners of a store by bus channel, shared by both stores: one entry per `subscribe`
 * call, the channels that have listeners (what a store subscribes to underneath), and a delivery that
 * contains a throwing listener.
 */
export class ListenerRegistry {
  readonly #byChannel = new Map<string, Set<{ listener: BusListener }>>();
  readonly #onListenerError: (error: unknown, message: BusMessage) => void;

  constructor(onListenerError?: (error: unknown, message: BusMessage) => void) {
    this.#onListenerError =
      onListenerError ??
      ((error, message) =>
        console.error(
          `ember-presence: a listener of ${message.channel} threw`,
          error,
        ));
  }

  /** Adds `listener` on `channels` (checked, duplicates ignored); returns the (idempotent) removal. */
  add(channels: readonly string[], listener: BusListener): () => void {
    if (typeof listener !== 'function') {
      throw new TypeError('listener must be a function');
    }
    const unique = [
      ...new Set(channels.map((channel) => storeArgs.name(channel, 'channel'))),
    ];
    // An object per call, so one function subscribed twice is two subscriptions.
    const entry = { listener };
    for (const channel of unique) {
      let set = this.#byChannel.get(channel);
      if (!set) this.#byChannel.set(channel, (set = new Set()));
      set.add(entry);
    }
    return () => {
      for (const channel of unique) {
        const set = this.#byChannel.get(channel);
        set?.delete(entry);
        if (set?.size === 0) this.#byChannel.delete(channel);
      }
    };
  }

  /** The bus channels that have at least one listener. */
  channels(): string[] {
    return [...this.#byChannel.keys()];
  }

  /** Whether `channel` has a listener (lets a store skip decoding messages nobody wants). */
  has(channel: string): boolean {
    return this.#byChannel.has(channel);
  }

  /**
   * Calls every listener of `message.channel` with `message` (one object shared by all of them), in
   * subscription order; a listener added or removed meanwhile does not change this delivery.
   */
  deliver(message: BusMessage): void {
    const entries = this.#byChannel.get(message.channel);
    if (!entries) return;
    for (const { listener } of [...entries]) {
      try {
        listener(message);
      } catch (error) {
        this.#onListenerError(error, message);
      }
    }
  }

  /** Drops every listener (the store is closing). */
  clear(): void {
    this.#byChannel.clear();
  }
}
