import {
  canEnter,
  canView,
  publishRulesFor,
  toPresenceUser,
  type Requester,
} from './access.js';
import { ChannelRegistry, type PrefixCallback } from './channel-registry.js';
import { isValidChannelName } from './channel-name.js';
import { invalidClientIdError, isValidClientId } from './client-id.js';
import { DEFAULT_CONFIG_TTL_MS } from './config.js';
import { ChannelFull, InvalidAccess } from './errors.js';
import { consoleLogger, type Logger } from './logger.js';
import { publishHostMessage } from './message-bus/publish.js';
import { PRESENCE_BUS_PREFIX } from './message-bus/wire.js';
import { globalTimers, type Timers } from './timers.js';
import type { PresenceResult, PresenceStore, SweepResult } from './store.js';
import type {
  Audience,
  BusMessage,
  ChannelConfig,
  ChannelState,
  Clock,
  CurrentUser,
  PresenceUser,
} from './types.js';

/**
 * Run the sweep every 5 s: a vanished client is gone within its timeout + 5 s. The one default of
 * `sweepIntervalMs`, for the core and `createPresenceServer` alike; `0` disables the timer.
 */
export const DEFAULT_SWEEP_INTERVAL_MS = 5000;

export { PRESENCE_BUS_PREFIX };

/**
 * The timer functions the sweeper uses (see {@link globalTimers} for the default). Tests pass fake timers
 * and drive the sweeper with a fake clock.
 */
export type { Timers };

/** Options of {@link PresenceCore}. */
export interface PresenceCoreOptions {
  /** Where presence state, the bus backlog, cached configs and rate-limit counters live. */
  store: PresenceStore;
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: Clock;
  /** How long prefix-callback results ("not found" included) are cached in the store. Default 2 min. */
  configTtlMs?: number;
  /** Where callback failures and sweep failures are reported. Default `console.error`. */
  logger?: Logger;
  /**
   * Interval of the sweeper started by {@link PresenceCore.startSweeper}. Default
   * {@link DEFAULT_SWEEP_INTERVAL_MS}; `0` disables the timer (`startSweeper()` does nothing; call
   * {@link PresenceCore.sweep} yourself).
   */
  sweepIntervalMs?: number;
  /** Timer functions for the sweeper (tests). Default: the global ones, unref'd. */
  timers?: Timers;
}

/**
 * Sets an own, enumerable property even for keys such as `__proto__`: names are client input, and a plain
 * assignment of `"__proto__"` would change the object's prototype instead of adding a key.
 */
export function setOwn<T>(
  target: Record<string, T>,
  key: string,
  value: T,
): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

const NO_CHANGE: PresenceResult = Object.freeze({
  changed: false,
  message: null,
});

function nonNegativeFinite(
  value: number | undefined,
  fallback: number,
  option: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(
      `ember-presence: \`${option}\` must be a finite number >= 0, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * The presence semantics of docs/protocol.md §1 and §5 on top of a {@link PresenceStore}: channel configs from prefix
 * callbacks (cached in the store), the access rules, present / leave / state, the auto-leave sweep and a
 * passthrough to the message bus. It performs no I/O of its own and runs in Node and in the browser (the
 * test-support fake server uses this very class), so the HTTP handlers, the server-side API and the fake
 * cannot drift apart.
 *
 * @example
 * const presence = new PresenceCore({ store: new MemoryStore() });
 * presence.registerPrefix('site', () => ({ public: true }));
 * presence.startSweeper();
 * await presence.present(currentUser, '/site/online', clientId);
 * await presence.state('/site/online', null); // { users: [...], count: 1, last_message_id: 1 }
 * await presence.stop();
 */
export class PresenceCore {
  /** The store this core runs on (also used directly by the HTTP handlers for rate limiting). */
  readonly store: PresenceStore;
  /** The clock every store call is stamped with. */
  readonly clock: Clock;
  /** Where failures are reported. */
  readonly logger: Logger;
  readonly #registry: ChannelRegistry;
  readonly #sweepIntervalMs: number;
  readonly #timers: Timers;
  #sweepTimer: unknown = null;
  #sweeperRunning = false;
  #currentSweep: Promise<void> | null = null;

  constructor(options: PresenceCoreOptions) {
    if (
      typeof options !== 'object' ||
      options === null ||
      typeof options.store !== 'object' ||
      !options.store
    ) {
      throw new TypeError(
        'ember-presence: new PresenceCore({ store }) needs a PresenceStore',
      );
    }
    this.store = options.store;
    this.clock = options.clock ?? (() => Date.now());
    this.logger = options.logger ?? consoleLogger;
    this.#sweepIntervalMs = nonNegativeFinite(
      options.sweepIntervalMs,
      DEFAULT_SWEEP_INTERVAL_MS,
      'sweepIntervalMs',
    );
    this.#timers = options.timers ?? globalTimers;
    this.#registry = new ChannelRegistry({
      store: this.store,
      clock: this.clock,
      configTtlMs: nonNegativeFinite(
        options.configTtlMs,
        DEFAULT_CONFIG_TTL_MS,
        'configTtlMs',
      ),
      logger: this.logger,
    });
  }

  /**
   * Registers the config callback for channels `/<prefix>/…` (docs/protocol.md §1). Throws on an invalid prefix
   * (`^[a-zA-Z0-9_-]+$`) or a prefix registered twice.
   *
   * @example presence.registerPrefix('team', (name) => teams.has(name) ? { allowedUserIds: [1, 2] } : null);
   */
  registerPrefix(prefix: string, callback: PrefixCallback): void {
    this.#registry.registerPrefix(prefix, callback);
  }

  /** Drops the cached config of `name` for every server process sharing the store. */
  invalidateConfig(name: string): Promise<void> {
    return this.#registry.invalidateConfig(name);
  }

  /**
   * The channel's normalised config, or `null` when it does not exist (invalid name, unknown prefix, the
   * callback returned `null`, or the callback failed — logged). Rejects only when the store fails.
   */
  getConfig(name: string): Promise<ChannelConfig | null> {
    return this.#registry.getConfig(name);
  }

  /**
   * Marks `clientId` of `user` present in channel `name` until now + the channel's timeout. The user's
   * first client publishes `entering_users` (or `count_delta: 1`); repeating it is a heartbeat that only
   * extends the expiry. Rejects with {@link InvalidAccess} when the channel does not exist or the user may
   * not enter it (the two are deliberately the same error), with {@link ChannelFull} when a user who is
   * not present yet would exceed the channel's `maxUsers`, and with a 400 `HttpError` for an invalid
   * client id.
   */
  async present(
    user: CurrentUser,
    name: string,
    clientId: string,
  ): Promise<PresenceResult> {
    if (!isValidClientId(clientId)) throw invalidClientIdError();
    if (!user) throw new InvalidAccess();
    const config = await this.getConfig(name);
    if (!config || !canEnter(config, user)) throw new InvalidAccess();
    const result = await this.store.present(
      name,
      toPresenceUser(user),
      clientId,
      // Stores take whole milliseconds; a fractional timeout in seconds must still be at least 1 ms.
      Math.max(1, Math.round(config.timeout * 1000)),
      publishRulesFor(config),
      this.#now(),
      config.maxUsers ?? null,
    );
    if (result.full) throw new ChannelFull();
    return result;
  }

  /**
   * Removes `clientId` of the user from channel `name`; their last client publishes `leaving_user_ids`
   * (or `count_delta: -1`). No access check, and never an error for unknown channels or clients (a silent
   * no-op). Publishes with the channel's current rules when it still exists, otherwise with the rules the
   * store kept from the last `present`.
   */
  async leave(
    user: Pick<CurrentUser, 'id'> | number,
    name: string,
    clientId: string,
  ): Promise<PresenceResult> {
    const userId = typeof user === 'number' ? user : user?.id;
    if (typeof userId !== 'number' || !Number.isSafeInteger(userId)) {
      throw new TypeError(
        'ember-presence: leave(user, name, clientId) needs a user (or user id) with an integer id',
      );
    }
    if (!isValidChannelName(name) || !isValidClientId(clientId))
      return NO_CHANGE;
    const config = await this.getConfig(name);
    return this.store.leave(
      name,
      userId,
      clientId,
      config ? publishRulesFor(config) : null,
      this.#now(),
    );
  }

  /**
   * The channel's state as `user` (`null` = anonymous) may see it: `{ users, count, last_message_id }`, or
   * `{ count, last_message_id }` for count-only channels. `null` when the channel does not exist OR the user
   * may not view it — callers cannot tell the two apart, by design. It is the same object `GET
   * /presence/get` returns, to embed in a host endpoint's payload (docs/protocol.md §3); the client passes it to
   * `channel.subscribe(initialData)` and makes no request (`createPresenceServer` forwards it as
   * `stateFor`).
   *
   * @example
   * router.get('/topics/:id', async (req, res) => {
   *   const user = await currentUser(req);
   *   res.json({ topic, presence: await presence.state(`/topic/${topic.id}/reply`, user) });
   * });
   */
  async state(name: string, user: Requester): Promise<ChannelState | null> {
    const config = await this.getConfig(name);
    if (!config || !canView(config, user)) return null;
    const state = await this.store.state(name, config.countOnly, this.#now());
    if (config.countOnly)
      return { count: state.count, last_message_id: state.last_message_id };
    const users =
      'users' in state
        ? state.users.map((member: PresenceUser) => toPresenceUser(member))
        : [];
    return {
      users,
      count: state.count,
      last_message_id: state.last_message_id,
    };
  }

  /** {@link state} for several channels at once: a map of each name to its state or `null`. */
  async states(
    names: readonly string[],
    user: Requester,
  ): Promise<Record<string, ChannelState | null>> {
    const unique = [...new Set(names)];
    const results = await Promise.all(
      unique.map((name) => this.state(name, user)),
    );
    const map: Record<string, ChannelState | null> = {};
    unique.forEach((name, index) => setOwn(map, name, results[index] ?? null));
    return map;
  }

  /** Number of users present in channel `name`, or `null` when it does not exist or `user` may not view it. */
  async count(name: string, user: Requester): Promise<number | null> {
    const state = await this.state(name, user);
    return state ? state.count : null;
  }

  /**
   * Removes every client whose expiry has passed, publishing one message per channel that lost users.
   * Safe to call from many processes at once. {@link startSweeper} calls it on a timer.
   */
  sweep(): Promise<SweepResult> {
    return this.store.sweep(this.#now());
  }

  /**
   * Runs {@link sweep} every `sweepIntervalMs` (default 5 s) until {@link stop}. The timer does not keep
   * the process alive; a failing sweep is logged and the next one still runs. Calling it twice is a no-op,
   * and so is calling it with `sweepIntervalMs: 0`.
   */
  startSweeper(): void {
    if (this.#sweeperRunning || this.#sweepIntervalMs === 0) return;
    this.#sweeperRunning = true;
    this.#scheduleSweep();
  }

  /** Stops the sweeper and waits for a sweep in progress. The store stays open: its owner closes it. */
  async stop(): Promise<void> {
    this.#sweeperRunning = false;
    if (this.#sweepTimer !== null) {
      this.#timers.clearTimeout(this.#sweepTimer);
      this.#sweepTimer = null;
    }
    await this.#currentSweep;
  }

  /**
   * Publishes `data` on bus channel `channel` for `audience` (default everyone), for host code that wants
   * the message bus for more than presence. Same rule as `MessageBus.publish`
   * ({@link publishHostMessage}): a bus channel name, a JSON value, and never the reserved `/presence/…`
   * namespace, where foreign messages would break the gapless ids clients rely on.
   *
   * @example await presence.publish('/notifications', { unread: 3 }, { userIds: [42] });
   */
  publish(
    channel: string,
    data: unknown,
    audience?: Audience | null,
  ): Promise<BusMessage> {
    return publishHostMessage(this.store, channel, data, audience, this.#now());
  }

  /** Stores take whole milliseconds; a host clock may not. */
  #now(): number {
    return Math.floor(this.clock());
  }

  #scheduleSweep(): void {
    if (!this.#sweeperRunning) return;
    // A timeout chain rather than an interval: a slow sweep never overlaps the next one.
    this.#sweepTimer = this.#timers.setTimeout(() => {
      this.#sweepTimer = null;
      this.#currentSweep = this.sweep()
        .then(
          () => undefined,
          (err: unknown) => {
            this.logger.error(
              'presence sweep failed; retrying at the next interval',
              {
                error: err instanceof Error ? err.message : String(err),
              },
            );
          },
        )
        .finally(() => {
          this.#currentSweep = null;
          this.#scheduleSweep();
        });
    }, this.#sweepIntervalMs);
  }
}
