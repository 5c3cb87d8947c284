import { tracked } from '@glimmer/tracking';
import { resolveActiveOptions, type ActiveOptions } from './activity';
import type { ChannelState } from './channel-state';
import type { PresenceUser } from './types';

/** Options of `PresenceChannel#enter`. */
export interface EnterOptions {
  /**
   * Report this client as gone while the person is away (tab hidden, no input), and back when they
   * return. Default `true`; pass `false` for presence that is about the page being open.
   */
  onlyWhileActive?: boolean;
  /** What "away" means; each value has a minimum (60000 and 10000 ms) and defaults to it. */
  activeOptions?: Partial<ActiveOptions>;
}

/** How a proxy reaches the service. Internal: apps get proxies from `presence.getChannel()`. */
export interface ChannelHost {
  /** Throws an error naming the fix when the visitor is anonymous. */
  assertCanEnter(name: string, action: 'enter' | 'leave'): void;
  enter(proxy: PresenceChannel, rule: ActiveOptions | null): Promise<void>;
  leave(proxy: PresenceChannel): Promise<void>;
  /** Resolves with the shared state once it has data; the proxy may have unsubscribed meanwhile. */
  subscribe(
    proxy: PresenceChannel,
    initialData: unknown,
  ): Promise<ChannelState>;
  unsubscribe(proxy: PresenceChannel): void;
}

/**
 * One handle on a presence channel. `presence.getChannel(name)` returns a new one on every call; handles
 * of the same name share their server traffic and data, so a component can own its handle without
 * knowing about the others. Every field is tracked: use them directly in templates and getters.
 *
 * @example
 * channel = this.presence.getChannel('/topic/280/reply', { owner: this });
 * async startTyping() { await this.channel.enter(); }
 * // {{this.channel.count}} replying: {{#each this.channel.users as |user|}}{{user.username}}{{/each}}
 */
export class PresenceChannel {
  /** The channel name, e.g. `/site/online`. */
  readonly name: string;
  /** This handle entered the channel (and was not refused since). */
  get present(): boolean {
    return this._present;
  }
  /** This handle follows the channel; `users`/`count` are available. */
  get subscribed(): boolean {
    return this._subscribed;
  }
  /**
   * Why the channel stopped working for this handle, if it did: a `PresenceChannelNotFound` when the
   * server refused presence (an `enter` or a later heartbeat answered `false`, e.g. access revoked) or
   * the channel vanished while subscribed; a `PresenceRequestError` for a request that cannot succeed.
   * Cleared by the next `enter()`/`subscribe()`.
   */
  get error(): Error | undefined {
    return this._error;
  }

  /**
   * One tracked field per raw fact, plus an untracked copy the methods read: `enter()` or `subscribe()`
   * called while rendering (e.g. from a component constructor) then never reads a tracked value it is
   * about to write, which Ember forbids in one computation. Unchanged values are not written at all.
   */
  @tracked private _present = false;
  @tracked private _subscribed = false;
  @tracked private _error: Error | undefined;
  #flags: ChannelFlags = {
    present: false,
    subscribed: false,
    error: undefined,
  };

  #host: ChannelHost;
  @tracked private shared: ChannelState | undefined;
  #subscribing: Promise<void> | undefined;

  /** @internal Use `presence.getChannel(name)`. */
  constructor(name: string, host: ChannelHost) {
    this.name = name;
    this.#host = host;
  }

  /** Present users while subscribed (one entry per user); `null` for count-only channels; `undefined` when not subscribed. */
  get users(): readonly PresenceUser[] | null | undefined {
    if (!this.subscribed) return undefined;
    return this.shared?.data?.users;
  }

  /** Number of present users while subscribed; `undefined` when not subscribed. */
  get count(): number | undefined {
    if (!this.subscribed) return undefined;
    return this.shared?.data?.count;
  }

  /** Whether the channel only exposes a count; `undefined` until subscribed. */
  get countOnly(): boolean | undefined {
    if (!this.subscribed) return undefined;
    const data = this.shared?.data;
    return data ? data.users === null : undefined;
  }

  /**
   * Marks this handle present. Resolves when the server confirmed; rejects with
   * `PresenceChannelNotFound` when it refused (the handle is then not present). A second `enter` on a
   * present handle does nothing. Never throws: for anonymous visitors and for `activeOptions` below the
   * minimums it returns a rejected promise whose error names the fix.
   */
  enter(options: EnterOptions = {}): Promise<void> {
    try {
      this.#host.assertCanEnter(this.name, 'enter');
      const { onlyWhileActive = true, activeOptions } = options;
      const rule = onlyWhileActive ? resolveActiveOptions(activeOptions) : null;
      if (this.#flags.present) return Promise.resolve();
      this.#set({ present: true, error: undefined });
      return this.#host.enter(this, rule);
    } catch (error) {
      return Promise.reject(
        error instanceof Error ? error : new Error(String(error)),
      );
    }
  }

  /**
   * Leaves; resolves when the server confirmed (at once when no request is needed). No-op unless present.
   * Never throws: an anonymous visitor gets a rejected promise.
   */
  leave(): Promise<void> {
    try {
      this.#host.assertCanEnter(this.name, 'leave');
      if (!this.#flags.present) return Promise.resolve();
      this.#set({ present: false });
      return this.#host.leave(this);
    } catch (error) {
      return Promise.reject(
        error instanceof Error ? error : new Error(String(error)),
      );
    }
  }

  /**
   * Follows the channel: fetches its state (batched with every other channel subscribed in the same
   * turn), or takes `initialData` — the same state object the server embeds in a page payload — without
   * a request. Rejects with `PresenceChannelNotFound` for a missing or forbidden channel. No-op when
   * already subscribed.
   */
  subscribe(initialData?: unknown): Promise<void> {
    if (this.#flags.subscribed) return Promise.resolve();
    if (this.#subscribing) return this.#subscribing;
    this.#set({ error: undefined });
    const attempt: Promise<void> = this.#host.subscribe(this, initialData).then(
      (state) => {
        if (this.#subscribing !== attempt) return; // unsubscribed while loading
        this.#subscribing = undefined;
        this.shared = state;
        this.#set({ subscribed: true });
      },
      (error: unknown) => {
        if (this.#subscribing === attempt) this.#subscribing = undefined;
        if (error instanceof Error) this.#set({ error });
        throw error;
      },
    );
    this.#subscribing = attempt;
    return attempt;
  }

  /** Stops following. No-op when not subscribed. */
  unsubscribe(): void {
    if (!this.#flags.subscribed && !this.#subscribing) return;
    this.#subscribing = undefined;
    this.#set({ subscribed: false });
    this.shared = undefined;
    this.#host.unsubscribe(this);
  }

  /** @internal The server refused presence for this handle. */
  _refused(error: Error): void {
    this.#set({ present: false, error });
  }

  /** @internal The channel vanished while subscribed. */
  _lost(error: Error): void {
    this.#subscribing = undefined;
    this.#set({ subscribed: false, error });
    this.shared = undefined;
  }

  /** @internal The service forgets this handle's presence (the current user changed). */
  _forgetPresence(): void {
    this.#set({ present: false });
  }

  #set(change: Partial<ChannelFlags>): void {
    const previous = this.#flags;
    const next = { ...previous, ...change };
    this.#flags = next;
    if (next.present !== previous.present) this._present = next.present;
    if (next.subscribed !== previous.subscribed)
      this._subscribed = next.subscribed;
    if (next.error !== previous.error) this._error = next.error;
  }
}

interface ChannelFlags {
  present: boolean;
  subscribed: boolean;
  error: Error | undefined;
}
