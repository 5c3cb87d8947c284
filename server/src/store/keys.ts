/**
 * Every Redis key (and shard channel) the RedisStore uses, built in one place.
 *
 * Layout, for prefix `ep:` and presence channel `/site/online` (bus channel `/presence/site/online`):
 *
 * ```
 * ep:{/presence/site/online}p|clients    ZSET  "<userId>:<client tag>" -> expiry ms (tag: see clientTag)
 * ep:{/presence/site/online}p|users      HASH  userId -> "<present clients>:<profile fingerprint>"
 * ep:{/presence/site/online}p|info       HASH  publish rules, rs (their signature, for the heartbeat
 *                                              script), due (sweep index score), touched (last TTL
 *                                              refresh), v (state version, for in-process state caches),
 *                                              es (last event number), ms and os (maxUsersShown, the last
 *                                              enter number)
 * ep:{/presence/site/online}p|events     ZSET  seq -> "<seq>|<code>|<userId>|<at>": join/leave events not
 *                                              delivered yet (only while some process consumes events)
 * ep:{/presence/site/online}p|order      ZSET  userId -> enter number: with maxUsersShown K (info `ms`), the
 *                                              first K are listed (absent without it)
 * ep:{/presence/site/online}p|profiles   HASH  userId -> user JSON of the users in order, so a user listed
 *                                              in a leaver's place is announced from the channel's slot
 * ep:{/presence/site/online}b|meta       HASH  id (last message_id), gid (last global_id)
 * ep:{/presence/site/online}b|log        ZSET  message_id -> message JSON (the backlog)
 * ep:{/presence/site/online}b|pubsub     shard channel (SPUBLISH / SSUBSCRIBE)
 * ep:sweep|3                             ZSET  presence channel -> due ms (one shard of the sweep index)
 * ep:events|3                            ZSET  presence channel -> visit-at ms (channels whose outbox may
 *                                              hold events; the shard number is the sweep shard's)
 * ep:events|3|lease                      STRING the process delivering shard 3's events (PX)
 * ep:events|consumers                    STRING set (PX) while a process has hooks or webhooks
 * ep:counts                              HASH  channels, clients: deployment-wide gauges
 * ep:config|/site/online                 STRING cached config JSON (PX TTL)
 * ep:rate|<key>                          HASH  start, count (PX TTL)
 * ep:{user|7}|channels                   ZSET  channel -> until ms (the per-user cap's claims)
 * ep:{user|7}|update-rate                HASH  start, count (PX TTL): user 7's update rate window
 * ep:{user|7}|profile                    STRING user 7's profile, compact JSON (PX TTL; see profile-codec)
 * ```
 *
 * Why it is shaped this way:
 * - The hash tag is the BUS channel name, so a presence channel's keys, its backlog and its shard channel
 *   all land in one cluster slot and one Lua script may touch them all.
 * - Collisions between channel names are impossible: `escapeKeyPart` is injective and removes every `{`
 *   and `}`, so the tag always ends at our own `}` and contains the whole (escaped) name; what follows it
 *   is one of a fixed set of suffixes. Keys without a tag (config, rate) escape the name too, so a name
 *   containing braces cannot create an accidental tag.
 * - A user's claims and update rate window share the tag `{user|<id>}` (never a bus channel's: those
 *   start with `/`), so one script admits an update (user-update-admit.lua).
 * - A profile is stored once per user, not once per channel the user is in (it was 70 % of a present
 *   client's bytes); a channel keeps only a fingerprint of it, so an edit still moves the channel's state
 *   version. State reads fetch the profiles of the ids they list, grouped per node by ioredis.
 * - The sweep index is split into shards (each its own key, so its own slot) so no single key sits on
 *   the path of every channel.
 */
import { presenceBusChannel } from '../core/bus-messages.js';

/** The default key prefix: short, and names the owner in `redis-cli --scan`. */
export const DEFAULT_KEY_PREFIX = 'ep:';

/** The default number of sweep index shards. Every process sharing a Redis must use the same number. */
export const DEFAULT_SWEEP_SHARDS = 16;

/** The keys one presence channel's scripts touch, in the KEYS order of the presence-*.lua scripts. */
export interface PresenceKeys {
  clients: string;
  users: string;
  info: string;
  /** The channel's join/leave event outbox (see presence-present.lua). */
  events: string;
  /** With `maxUsersShown`: users by enter order, and their profiles (see presence-present.lua). */
  order: string;
  profiles: string;
  bus: BusKeys;
}

/** The keys of one bus channel, in the KEYS order of bus-publish.lua. */
export interface BusKeys {
  meta: string;
  log: string;
  /** The shard channel its messages are SPUBLISHed on. */
  pubsub: string;
}

/** KEYS of the presence-*.lua scripts, in their documented order. */
export function presenceScriptKeys(keys: PresenceKeys): string[] {
  return [
    keys.clients,
    keys.users,
    keys.info,
    keys.bus.meta,
    keys.bus.log,
    keys.bus.pubsub,
    keys.events,
    keys.order,
    keys.profiles,
  ];
}

/**
 * Encodes `%`, `{` and `}` as `%25`, `%7B`, `%7D`: injective, and the result contains no brace, so it
 * can sit inside a hash tag.
 */
export function escapeKeyPart(value: string): string {
  return value.replace(
    /[%{}]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** Checks a key prefix: any string without braces (a brace would change every key's hash slot). */
export function checkKeyPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new TypeError(
      `keyPrefix must be a string without "{" or "}", got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}

/** FNV-1a, 32 bit: a stable, dependency-free way to spread channels over the sweep index shards. */
function fnv1a(value: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * Builds every key of one store.
 *
 * @example
 * const keys = new RedisKeys('ep:', 16);
 * keys.presence('/site/online').clients; // 'ep:{/presence/site/online}p|clients'
 */
export class RedisKeys {
  readonly prefix: string;
  readonly sweepShards: number;

  constructor(
    prefix: string = DEFAULT_KEY_PREFIX,
    sweepShards: number = DEFAULT_SWEEP_SHARDS,
  ) {
    this.prefix = checkKeyPrefix(prefix);
    if (
      !Number.isSafeInteger(sweepShards) ||
      sweepShards < 1 ||
      sweepShards > 1024
    ) {
      throw new TypeError(
        `sweepShards must be an integer from 1 to 1024, got ${String(sweepShards)}`,
      );
    }
    this.sweepShards = sweepShards;
  }

  /** Keys of a bus channel (`/presence/site/online`, or any channel used with `publish`). */
  bus(busChannel: string): BusKeys {
    const base = `${this.prefix}{${escapeKeyPart(busChannel)}}`;
    return {
      meta: `${base}b|meta`,
      log: `${base}b|log`,
      pubsub: `${base}b|pubsub`,
    };
  }

  /** Keys of a presence channel (`/site/online`), tagged with its bus channel `/presence/site/online`. */
  presence(channel: string): PresenceKeys {
    const busChannel = presenceBusChannel(channel);
    const base = `${this.prefix}{${escapeKeyPart(busChannel)}}`;
    return {
      clients: `${base}p|clients`,
      users: `${base}p|users`,
      info: `${base}p|info`,
      events: `${base}p|events`,
      order: `${base}p|order`,
      profiles: `${base}p|profiles`,
      bus: this.bus(busChannel),
    };
  }

  /** The sweep index shard a presence channel is indexed in. */
  sweepShardOf(channel: string): string {
    return this.sweepShard(fnv1a(channel) % this.sweepShards);
  }

  /** Sweep index shard number `index` (0-based). */
  sweepShard(index: number): string {
    return `${this.prefix}sweep|${index}`;
  }

  /**
   * Event index shard number `index`: presence channels whose outbox may hold events -> when to visit
   * them. A channel's event shard has the number of its sweep shard.
   */
  eventShard(index: number): string {
    return `${this.prefix}events|${index}`;
  }

  /** The event index shard of a presence channel. */
  eventShardOf(channel: string): string {
    return this.eventShard(fnv1a(channel) % this.sweepShards);
  }

  /** The lease on event index shard `index` (see events-lease.lua). */
  eventLease(index: number): string {
    return `${this.prefix}events|${index}|lease`;
  }

  /** Set while some process consumes events (hooks or webhooks): every process then records them. */
  eventConsumers(): string {
    return `${this.prefix}events|consumers`;
  }

  /** The deployment-wide counters of {@link PresenceStore.counts}: HASH channels, clients. */
  counts(): string {
    return `${this.prefix}counts`;
  }

  /** All sweep index shards. */
  allSweepShards(): string[] {
    return Array.from({ length: this.sweepShards }, (_, i) =>
      this.sweepShard(i),
    );
  }

  /** The cached config of a presence channel. */
  config(channel: string): string {
    return `${this.prefix}config|${escapeKeyPart(channel)}`;
  }

  /** The channels user `userId` is present in, for the per-user cap (the user's slot). */
  userChannels(userId: number): string {
    return `${this.prefix}{user|${userId}}|channels`;
  }

  /** The rate window of user `userId`'s updates (the user's slot, with {@link userChannels}). */
  userUpdateRate(userId: number): string {
    return `${this.prefix}{user|${userId}}|update-rate`;
  }

  /** User `userId`'s profile (the user's slot). */
  userProfile(userId: number): string {
    return `${this.prefix}{user|${userId}}|profile`;
  }

  /** A rate-limit window. */
  rateLimit(key: string): string {
    return `${this.prefix}rate|${escapeKeyPart(key)}`;
  }

  /** A glob matching every key of this prefix (for cleanup in tests and tools). */
  pattern(): string {
    return `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  }
}
