import {
  isValidChannelName,
  isValidPrefix,
  parseChannelName,
} from './channel-name.js';
import { ChannelConfigError, normalizeChannelConfig } from './config.js';
import type { Logger } from './logger.js';
import type { PresenceStore } from './store.js';
import type { ChannelConfig, ChannelConfigInput, Clock } from './types.js';
import { Lru } from './lru.js';

/**
 * Decides, "just in time", whether a channel exists and what its config is (docs/protocol.md §1).
 *
 * @example
 * presence.registerPrefix('topic', async (name) => {
 *   const topic = await Topics.find(Number(name.split('/')[2]));
 *   return topic ? { allowedGroupIds: topic.groupIds } : null;
 * });
 */
export type PrefixCallback = (
  name: string,
) => ChannelConfigInput | null | PromiseLike<ChannelConfigInput | null>;

interface InFlightLookup {
  promise: Promise<ChannelConfig | null>;
  /** Set by `invalidateConfig` while the lookup runs: its result must not be cached. */
  stale: boolean;
}

/** What {@link ChannelRegistry} needs; {@link PresenceCore} builds it from its own options. */
export interface ChannelRegistryOptions {
  store: PresenceStore;
  clock: Clock;
  /** How long a callback result (not found included) is cached in the store; 0 disables caching. */
  configTtlMs: number;
  logger: Logger;
}

/**
 * "Not found" answers are remembered in the process for at most 10 s (or the TTL, if shorter), never in
 * the store: anyone may ask for any name, and a store key per made-up name (336 bytes for 2 minutes on
 * Redis) let one anonymous client fill Redis at thousands of keys a second. Short, so a channel that
 * comes into existence (a new topic) is found within seconds by every process.
 */
export const NEGATIVE_CONFIG_TTL_MS = 10_000;

/** Most "not found" answers remembered per process; the oldest are forgotten first. */
export const MAX_NEGATIVE_CONFIGS = 10_000;

/**
 * Prefix callbacks plus the config cache. Configs are cached in the STORE so every server process shares
 * them and a callback runs about once per TTL per channel across the deployment; "not found" is cached
 * in the process only (see {@link NEGATIVE_CONFIG_TTL_MS}).
 * Failed lookups (a callback that throws, rejects or returns something invalid) are logged and count as
 * "not found" for that call only: they are not cached, so a transient failure in host code does not hide a
 * channel for a whole TTL. Concurrent lookups of one name in one process share a single callback call.
 */
export class ChannelRegistry {
  readonly #store: PresenceStore;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #logger: Logger;
  readonly #callbacks = new Map<string, PrefixCallback>();
  readonly #inFlight = new Map<string, InFlightLookup>();
  /** Names the callback said do not exist → until when that answer is reused (insertion order = age). */
  readonly #notFound = new Lru<string, number>(MAX_NEGATIVE_CONFIGS);

  constructor(options: ChannelRegistryOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#ttlMs = options.configTtlMs;
    this.#logger = options.logger;
  }

  /**
   * Registers the callback deciding the config of every channel `/<prefix>/…`. Throws when the prefix is
   * not `^[a-zA-Z0-9_-]+$`, is already registered, or the callback is not a function.
   */
  registerPrefix(prefix: string, callback: PrefixCallback): void {
    if (!isValidPrefix(prefix)) {
      throw new TypeError(
        `ember-presence: invalid prefix ${JSON.stringify(prefix)}: use letters, digits, "_" and "-" only, ` +
          `without slashes (the channel "/site/online" has the prefix "site")`,
      );
    }
    if (typeof callback !== 'function') {
      throw new TypeError(
        `ember-presence: registerPrefix("${prefix}", callback) needs a function (name) => config | null`,
      );
    }
    if (this.#callbacks.has(prefix)) {
      throw new Error(
        `ember-presence: the prefix "${prefix}" is already registered; register each prefix once`,
      );
    }
    this.#callbacks.set(prefix, callback);
  }

  /** `true` when a callback is registered for `prefix`. */
  hasPrefix(prefix: string): boolean {
    return this.#callbacks.has(prefix);
  }

  /**
   * The normalised config of channel `name`, or `null` when it does not exist (invalid name, unregistered
   * prefix, callback said `null`, or the callback failed). Rejects only when the store itself fails.
   */
  getConfig(name: string): Promise<ChannelConfig | null> {
    const parsed = parseChannelName(name);
    if (!parsed) return Promise.resolve(null);
    const callback = this.#callbacks.get(parsed.prefix);
    if (!callback) return Promise.resolve(null);
    const pending = this.#inFlight.get(name);
    if (pending) return pending.promise;
    const entry: InFlightLookup = {
      promise: Promise.resolve(null),
      stale: false,
    };
    entry.promise = this.#lookup(name, callback, entry).finally(() => {
      if (this.#inFlight.get(name) === entry) this.#inFlight.delete(name);
    });
    this.#inFlight.set(name, entry);
    return entry.promise;
  }

  /**
   * Drops the cached config of `name` in the store, so every process asks the callback again on its next
   * lookup (e.g. right after revoking someone's access).
   */
  async invalidateConfig(name: string): Promise<void> {
    // Invalid names are never looked up, so nothing can be cached for them.
    if (!isValidChannelName(name)) return;
    const pending = this.#inFlight.get(name);
    if (pending) {
      // A lookup that started before the invalidation may return the old config to its own callers, but
      // must not write it back into the cache.
      pending.stale = true;
      this.#inFlight.delete(name);
    }
    this.#notFound.delete(name);
    await this.#store.deleteConfig(name);
  }

  async #lookup(
    name: string,
    callback: PrefixCallback,
    entry: InFlightLookup,
  ): Promise<ChannelConfig | null> {
    if (this.#ttlMs > 0) {
      const until = this.#notFound.get(name);
      if (until !== undefined) {
        if (until > this.#clock()) return null;
        this.#notFound.delete(name);
      }
      const cached = await this.#store.getConfig(
        name,
        Math.floor(this.#clock()),
      );
      if (cached) {
        const config = this.#readCached(name, cached.config);
        if (config !== undefined) return config;
      }
    }
    const result = await this.#callCallback(name, callback);
    if (result === undefined) return null; // failed: logged, not cached
    if (result === null) {
      if (this.#ttlMs > 0 && !entry.stale) this.#rememberNotFound(name);
      return null;
    }
    if (this.#ttlMs > 0 && !entry.stale) {
      await this.#store.setConfig(
        name,
        result,
        this.#ttlMs,
        Math.floor(this.#clock()),
      );
    }
    return result;
  }

  #rememberNotFound(name: string): void {
    this.#notFound.set(
      name,
      this.#clock() + Math.min(this.#ttlMs, NEGATIVE_CONFIG_TTL_MS),
    );
  }

  /** A cached entry, re-validated because another (possibly older) process may have written it. */
  #readCached(
    name: string,
    config: ChannelConfig | null,
  ): ChannelConfig | null | undefined {
    if (config === null) return null;
    try {
      return normalizeChannelConfig(config);
    } catch (err) {
      this.#logger.error('ignoring an invalid cached channel config', {
        channel: name,
        error: String(err),
      });
      return undefined;
    }
  }

  /** The callback's normalised result, `null` for "not found", or `undefined` when it failed (logged). */
  async #callCallback(
    name: string,
    callback: PrefixCallback,
  ): Promise<ChannelConfig | null | undefined> {
    let raw: unknown;
    try {
      raw = await callback(name);
    } catch (err) {
      this.#logger.error(
        'prefix callback failed; treating the channel as not found',
        {
          channel: name,
          error:
            err instanceof Error ? (err.stack ?? err.message) : String(err),
        },
      );
      return undefined;
    }
    if (raw === null) return null;
    try {
      return normalizeChannelConfig(raw);
    } catch (err) {
      const reason =
        err instanceof ChannelConfigError ? err.message : String(err);
      this.#logger.error(
        'prefix callback returned an invalid config; treating the channel as not found ' +
          '(return a config object, or null when the channel does not exist)',
        { channel: name, error: reason },
      );
      return undefined;
    }
  }
}
