import { tracked } from '@glimmer/tracking';
import { resolveActiveOptions, type ActiveOptions } from './activity';
import type { SharedChannel } from './shared-channel';
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

/**
 * The side of a handle that the service and the shared channel state see (never the app): its name and
 * what they may tell it. Internal: the exported `PresenceChannel` type carries none of it.
 */
export interface ChannelHandle {
  readonly name: string;
  /** The server refused presence for this handle: it is not present any more, and says why. */
  refused(error: Error): void;
  /** The channel vanished while subscribed: the handle is unsubscribed, and says why. */
  lost(error: Error): void;
  /** The service forgets this handle's presence (the current user changed). */
  forgetPresence(): void;
}

/** How a proxy reaches the service. Internal: apps get proxies from `presence.getChannel()`. */
export interface ChannelHost {
  /** Throws an error naming the fix when the visitor is anonymous. */
  assertCanEnter(name: string, action: 'enter' | 'leave'): void;
  enter(handle: ChannelHandle, rule: ActiveOptions | null): Promise<void>;
  leave(handle: ChannelHandle): Promise<void>;
  /** Resolves with the shared state once it has data; the proxy may have unsubscribed meanwhile. */
  subscribe(
    handle: ChannelHandle,
    initialData: unknown,
  ): Promise<SharedChannel>;
  unsubscribe(handle: ChannelHandle): void;
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
    return this.#flags.present;
  }
  /** This handle follows the channel; `users`/`count` are available. */
  get subscribed(): boolean {
    return this.#flags.subscribed;
  }
  /**
   * Why the channel stopped working for this handle, if it did: a `PresenceChannelNotFound` when the
   * server refused presence (an `enter` or a later heartbeat answered `false`, e.g. access revoked) or
   * the channel vanished while subscribed; a `PresenceChannelFull` when the server refused an `enter`
   * because the channel holds its `maxUsers`; a `PresenceRequestError` for a request that cannot succeed.
   * Cleared by the next `enter()`/`subscribe()`.
   */
  get error(): Error | undefined {
    return this.#flags.error;
  }

  #flags = new HandleFlags();
  #host: ChannelHost;
  #subscribing: Promise<void> | undefined;
  /** What the service and the channel state hold of this handle. */
  #handle: ChannelHandle;

  /** @internal Use `presence.getChannel(name)`. */
  constructor(name: string, host: ChannelHost) {
    this.name = name;
    this.#host = host;
    this.#handle = {
      name,
      refused: (error) => this.#flags.set({ present: false, error }),
      lost: (error) => {
        this.#subscribing = undefined;
        this.#flags.set({ subscribed: false, error });
        this.#flags.shared = undefined;
      },
      forgetPresence: () => this.#flags.set({ present: false }),
    };
  }

  /**
   * Present users while subscribed (one entry per user, in the order they entered); `null` for count-only
   * channels; `undefined` when not subscribed. On a channel with `maxUsersShown: K` only the K who entered
   * first are listed, so compare with `count` to show "and N others".
   */
  get users(): readonly PresenceUser[] | null | undefined {
    if (!this.subscribed) return undefined;
    return this.#flags.shared?.data?.users;
  }

  /**
   * Number of present users while subscribed, every one of them: on a channel with `maxUsersShown` also
   * those `users` does not list. `undefined` when not subscribed.
   */
  get count(): number | undefined {
    if (!this.subscribed) return undefined;
    return this.#flags.shared?.data?.count;
  }

  /** Whether the channel only exposes a count; `undefined` until subscribed. */
  get countOnly(): boolean | undefined {
    if (!this.subscribed) return undefined;
    const data = this.#flags.shared?.data;
    return data ? data.users === null : undefined;
  }

  /**
   * Marks this handle present. Resolves when the server confirmed; rejects with
   * `PresenceChannelNotFound` when it refused, or `PresenceChannelFull` when the channel holds its
   * `maxUsers` (the handle is then not present). A second `enter` on a
   * present handle does nothing. Never throws: for anonymous visitors and for `activeOptions` below the
   * minimums it returns a rejected promise whose error names the fix.
   */
  enter(options: EnterOptions = {}): Promise<void> {
    try {
      this.#host.assertCanEnter(this.name, 'enter');
      const { onlyWhileActive = true, activeOptions } = options;
      const rule = onlyWhileActive ? resolveActiveOptions(activeOptions) : null;
      if (this.#flags.current.present) return Promise.resolve();
      this.#flags.set({ present: true, error: undefined });
      return this.#host.enter(this.#handle, rule);
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
      if (!this.#flags.current.present) return Promise.resolve();
      this.#flags.set({ present: false });
      return this.#host.leave(this.#handle);
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
    if (this.#flags.current.subscribed) return Promise.resolve();
    if (this.#subscribing) return this.#subscribing;
    this.#flags.set({ error: undefined });
    const attempt: Promise<void> = this.#host
      .subscribe(this.#handle, initialData)
      .then(
        (state) => {
          if (this.#subscribing !== attempt) return; // unsubscribed while loading
          this.#subscribing = undefined;
          this.#flags.shared = state;
          this.#flags.set({ subscribed: true });
        },
        (error: unknown) => {
          if (this.#subscribing === attempt) this.#subscribing = undefined;
          if (error instanceof Error) this.#flags.set({ error });
          throw error;
        },
      );
    this.#subscribing = attempt;
    return attempt;
  }

  /** Stops following. No-op when not subscribed. */
  unsubscribe(): void {
    if (!this.#flags.current.subscribed && !this.#subscribing) return;
    this.#subscribing = undefined;
    this.#flags.set({ subscribed: false });
    this.#flags.shared = undefined;
    this.#host.unsubscribe(this.#handle);
  }
}

interface ChannelFlags {
  present: boolean;
  subscribed: boolean;
  error: Error | undefined;
}

/**
 * The state of one handle: one tracked field per raw fact, plus an untracked copy (`current`) the
 * handle's methods read: `enter()` or `subscribe()` called while rendering (e.g. from a component
 * constructor) then never reads a tracked value it is about to write, which Ember forbids in one
 * computation. Unchanged values are not written at all.
 */
class HandleFlags {
  @tracked present = false;
  @tracked subscribed = false;
  @tracked error: Error | undefined;
  /** The shared state of the channel while subscribed. */
  @tracked shared: SharedChannel | undefined;
  current: Readonly<ChannelFlags> = {
    present: false,
    subscribed: false,
    error: undefined,
  };

  set(change: Partial<ChannelFlags>): void {
    const previous = this.current;
    const next = { ...previous, ...change };
    this.current = next;
    if (next.present !== previous.present) this.present = next.present;
    if (next.subscribed !== previous.subscribed)
      this.subscribed = next.subscribed;
    if (next.error !== previous.error) this.error = next.error;
  }
}
