import { Redis, type Cluster, type RedisOptions } from 'ioredis';

import { presenceBusChannel } from '../core/bus-messages.js';
import { asError } from '../core/errors.js';
import { ListenerRegistry } from '../core/listener-registry.js';
import { Lru } from '../core/lru.js';
import { retention, type RetentionOptions } from '../core/retention.js';
import { checkStoreCall, storeArgs } from '../core/store-args.js';
import type {
  BusListener,
  CachedConfig,
  PresenceResult,
  PresenceStore,
  PublishRules,
  RateLimitResult,
  StoreCounts,
  SweepResult,
  UpdateAdmission,
  UpdateAdmissionResult,
} from '../core/store.js';
import type {
  Audience,
  BusMessage,
  ChannelConfig,
  ChannelState,
  PresenceUser,
} from '../core/types.js';
import {
  DEFAULT_KEY_PREFIX,
  DEFAULT_SWEEP_SHARDS,
  RedisKeys,
  presenceScriptKeys,
} from './keys.js';
import { defineScripts, prepareScripts, type RunScript } from './scripts.js';
import {
  clientTag,
  rulesSignature,
  decodeProfile,
  encodeProfile,
  profileFingerprint,
} from './profile-codec.js';
import { RedisEventLog } from './redis-event-log.js';
import { StateCache } from './state-cache.js';

/** Options of {@link RedisStore}. Every field is optional. */
export interface RedisStoreOptions extends RetentionOptions {
  /**
   * Prepended to every key and shard channel (default `ep:`). Use it, not ioredis' own `keyPrefix`
   * (which is refused), so that keys and shard channels stay in the same hash slot. No braces.
   */
  keyPrefix?: string;
  /** Number of sweep index shards (default 16). Every process sharing the Redis must use the same. */
  sweepShards?: number;
  /** Channels visited per sweep round trip and shard. Default 100. */
  sweepBatchSize?: number;
  /**
   * Users kept in process from recent state reads, over all channels: the most recent reads' lists up to
   * this many users are always kept, at most twice as many in all (default 100,000, 20–40 MB; `0` keeps
   * none; a longer list is not kept). A read of a channel whose users did not change since this process last read it
   * then transfers and parses no users: Redis answers its count, last message id and state version only.
   */
  stateCacheUsers?: number;
  /** ioredis options, used only when the store is constructed from a URL. */
  redisOptions?: RedisOptions;
  /** Receives what a `subscribe` listener throws. Default: `console.error`. */
  onListenerError?: (error: unknown, message: BusMessage) => void;
  /**
   * Receives errors the store cannot return to a caller: the subscriber connection's errors, an
   * undecodable pub/sub message, a failed sweep index write. Default: `console.error`.
   */
  onError?: (error: unknown, context: string) => void;
}

/** A connection the store can use: a standalone/sentinel `Redis` or a `Cluster`. */
export type RedisConnection = Redis | Cluster;

/**
 * A user's stored profile lives an hour after the last write; every process presenting the user
 * writes it again each quarter of that (a SET per present user per 15 minutes and process).
 */
export const PROFILE_TTL_MS = 60 * 60 * 1000;

/** Users whose written profile a store remembers (~200 B each); a forgotten one costs one SET. */
const KNOWN_PROFILES_SIZE = 50_000;

/** Profile keys per MGET of a state read on one node. */
const PROFILE_READ_CHUNK = 1000;

/** A profile as stored (see profile-codec.ts), and when this process must write it again. */
interface KnownProfile {
  encoded: string;
  fingerprint: string;
  refreshAt: number;
}

/** See `RedisStoreOptions.stateCacheUsers`: a 100,000-user list is ~20 MB of parsed objects. */
export const DEFAULT_STATE_CACHE_USERS = 100_000;

/** How often a store writes its counter deltas (see `counts`): the gauges lag by at most this. */
const COUNTS_FLUSH_MS = 1000;

/** Upper bound of index rounds per shard and sweep, so one sweep call always ends. */
const MAX_SWEEP_ROUNDS = 100;

/**
 * Channels whose key names (and bus channel JSON, sweep shard) a store keeps ready: building them costs
 * an escape regex, a hash and a dozen string concatenations per call, and a busy server keeps presenting
 * in the same channels. An entry is about 1 KB.
 */
const CHANNEL_CACHE_SIZE = 1024;

/** A client's presents and leaves still running in this process, and the last one (see `#inOrder`). */
interface Running {
  pending: number;
  last: Promise<unknown>;
}

const SETTLED: Promise<unknown> = Promise.resolve();

/**
 * Clients this process has seen present (channel + client id → until when), so their heartbeats skip
 * the sweep-index write (see `present`). Bounded: a forgotten client only costs one extra ZADD.
 */
const KNOWN_CLIENTS_SIZE = 50_000;

/** What a store needs to run a presence channel's scripts, built once per channel (see the cache). */
interface ChannelEntry {
  /** KEYS of the presence-*.lua scripts. */
  scriptKeys: string[];
  /** KEYS of presence-state.lua. */
  stateKeys: string[];
  /** The bus channel `/presence<channel>` as a JSON string. */
  busChannelJson: string;
  /** The sweep index shard of the channel. */
  sweepShard: string;
  /** The event index shard of the channel. */
  eventShard: string;
  /** KEYS of presence-heartbeat.lua. */
  heartbeatKeys: string[];
  /**
   * The signature presence-present.lua keeps of the rules it was given (info `rs`), so that
   * presence-heartbeat.lua can tell they did not change; the last one computed is remembered.
   */
  rulesSignature(
    countOnly: boolean,
    publish: boolean,
    audienceJson: string,
    shownLimit: number | '',
  ): string;
}

/**
 * The `PresenceStore` for many server processes sharing one Redis or Redis Cluster (7.0+, for sharded
 * pub/sub).
 *
 * @example
 * const store = new RedisStore(new Redis(process.env.REDIS_URL), { keyPrefix: 'myapp:presence:' });
 * // or: new RedisStore('redis://127.0.0.1:6379'), or new RedisStore(new Cluster([{ host, port }]))
 *
 * How it works:
 * - Each state-changing operation (present, leave, the sweep of one channel, publish) is ONE Lua script
 *   in ONE round trip: it changes the state, appends the change message to the backlog of
 *   `/presence<channel>`, assigns its consecutive `message_id` and SPUBLISHes it. No lock, no retry. All
 *   keys a script touches share the bus channel's hash tag (see `keys.ts`), so it runs on a cluster.
 * - The sweep index (channels by earliest expiry) is split into `sweepShards` sorted sets. A channel is
 *   (re-)indexed only when its earliest expiry gets earlier (e.g. its first client), never on a
 *   heartbeat; the sweeper visits due channels, runs the per-channel sweep script (which returns the next
 *   due time) and re-scores the entry with a compare-and-set, so a concurrent present's entry wins.
 * - `global_id` = max(previous of the channel + 1, now × 1000): no global counter, which a cluster could
 *   not update from a per-channel script; unique and increasing per channel and time-ordered across.
 * - Fan-out: one subscriber connection per store (`duplicate()`, or a Cluster with sharded subscribers)
 *   SSUBSCRIBEs to the shard channels of the bus channels that have listeners, ref-counted.
 * - Presence keys expire 24 h after their last activity, backlogs 7 days — but once nobody is in a
 *   channel, its rules and backlog go 10 minutes later (`emptyChannelTtlMs`); `now` always comes from the
 *   caller (in ARGV), never from Redis' clock (TTLs are Redis' own).
 *
 * A connection passed in stays the caller's to close; one created from a URL is closed by `close()`.
 */
export class RedisStore implements PresenceStore {
  readonly keys: RedisKeys;
  readonly events: RedisEventLog;
  readonly #redis: RedisConnection;
  readonly #ownsConnection: boolean;
  readonly #isCluster: boolean;
  readonly #backlogSize: number;
  readonly #backlogTtlMs: number;
  readonly #channelTtlMs: number;
  readonly #emptyChannelTtlMs: number;
  readonly #sweepBatchSize: number;
  readonly #onError: (error: unknown, context: string) => void;
  /** Runs a script defined on the connection for this store's constants, checking its reply. */
  readonly #run: RunScript;
  /** Least recently used first (a hit moves its entry to the end). */
  readonly #channels = new Lru<string, ChannelEntry>(CHANNEL_CACHE_SIZE);
  readonly #knownClients = new Lru<string, number>(KNOWN_CLIENTS_SIZE);
  /** Client id → its tag in the clients sets (see clientTag): a tab presents in several channels. */
  readonly #clientTags = new Lru<string, string>(KNOWN_CLIENTS_SIZE);
  /** Profiles this process wrote (user id → what and until when it need not write it again). */
  readonly #knownProfiles = new Lru<number, KnownProfile>(KNOWN_PROFILES_SIZE);
  /** Per channel and client, the presents and leaves still running (see #inOrder). */
  readonly #running = new Map<string, Running>();
  readonly #stateCache: StateCache;

  /** Counter deltas not written yet, and the timer that writes them (see `#count`). */
  #pendingCounts = { clients: 0, channels: 0 };
  #countsTimer: ReturnType<typeof setTimeout> | null = null;
  #subscriber: RedisConnection | undefined;
  /** A bus channel is SSUBSCRIBEd while it has at least one listener here. */
  readonly #listeners: ListenerRegistry;
  /** Shard channel → bus channel, for the channels currently SSUBSCRIBEd. */
  readonly #subscribed = new Map<string, string>();
  /** Serializes SSUBSCRIBE/SUNSUBSCRIBE so that a quick unsubscribe/subscribe pair cannot interleave. */
  #syncChain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    connection: RedisConnection | string,
    options: RedisStoreOptions = {},
  ) {
    this.keys = new RedisKeys(
      options.keyPrefix ?? DEFAULT_KEY_PREFIX,
      options.sweepShards ?? DEFAULT_SWEEP_SHARDS,
    );
    ({
      backlogSize: this.#backlogSize,
      backlogTtlMs: this.#backlogTtlMs,
      channelTtlMs: this.#channelTtlMs,
      emptyChannelTtlMs: this.#emptyChannelTtlMs,
    } = retention(options));
    this.#sweepBatchSize = storeArgs.count(
      options.sweepBatchSize ?? 100,
      'sweepBatchSize',
    );
    this.#stateCache = new StateCache(
      storeArgs.size(
        options.stateCacheUsers ?? DEFAULT_STATE_CACHE_USERS,
        'stateCacheUsers',
      ),
    );
    this.#listeners = new ListenerRegistry(options.onListenerError);
    this.#onError =
      options.onError ??
      ((error, context) => console.error(`ember-presence: ${context}`, error));

    // Everything that can throw runs before a connection is opened, so a bad option leaks nothing.
    const scripts = prepareScripts({
      backlogSize: this.#backlogSize,
      channelTtlMs: this.#channelTtlMs,
      backlogTtlMs: this.#backlogTtlMs,
      emptyChannelTtlMs: this.#emptyChannelTtlMs,
    });
    if (typeof connection === 'string') {
      if (options.redisOptions?.keyPrefix)
        throw keyPrefixError(options.redisOptions.keyPrefix);
      this.#redis = new Redis(connection, options.redisOptions ?? {});
      this.#ownsConnection = true;
    } else if (
      connection &&
      typeof (connection as Partial<Redis>).defineCommand === 'function'
    ) {
      this.#redis = connection;
      this.#ownsConnection = false;
    } else {
      throw new TypeError(
        'RedisStore needs an ioredis Redis or Cluster instance, or a redis:// URL',
      );
    }
    this.#isCluster =
      (this.#redis as { isCluster?: boolean }).isCluster === true;
    const ioredisPrefix = this.#isCluster
      ? (this.#redis as Cluster).options.keyPrefix
      : (this.#redis as Redis).options.keyPrefix;
    if (ioredisPrefix) throw keyPrefixError(ioredisPrefix);
    this.#run = defineScripts(this.#redis, scripts);
    this.events = new RedisEventLog(this.#redis, this.keys, this.#run);
  }

  // Not `async`: an async method returning #inOrder's promise would resolve its own with it, two more
  // microtask hops and a promise per call. A refused call still answers with a rejected promise.
  present(
    channel: string,
    user: PresenceUser,
    clientId: string,
    timeoutMs: number,
    rules: PublishRules,
    now: number,
    maxUsers?: number | null,
  ): Promise<PresenceResult> {
    let checkedCall: ReturnType<typeof checkStoreCall.present>;
    try {
      this.#assertOpen();
      checkedCall = checkStoreCall.present(
        channel,
        user,
        clientId,
        timeoutMs,
        rules,
        now,
        maxUsers,
      );
    } catch (error) {
      return Promise.reject(asError(error));
    }
    const { user: member, rules: checked, maxUsers: limit } = checkedCall;
    const known = `${channel}\n${member.id}:${clientId}`;
    return this.#inOrder(known, (slot) =>
      this.#present(
        channel,
        member,
        clientId,
        timeoutMs,
        checked,
        now,
        limit,
        known,
        slot,
      ),
    );
  }

  /**
   * Runs `run` after the present or leave of the same channel and client (`key`) that is still running,
   * if any: one caller's calls for a client apply in the order they were made, although a present may
   * take two round trips (the short heartbeat script, then the full one) and a leave one.
   */
  #inOrder<T>(key: string, run: (slot: Running) => Promise<T>): Promise<T> {
    // The common case, nothing running for this client, allocates one small record and no promise: the
    // body (#present, #leave) calls #settled from its own `finally`. A `.then` per call to forget the
    // entry cost a heartbeat about 4 µs of this process's CPU (store-ops A/B).
    const slot = this.#running.get(key);
    if (slot) {
      slot.pending += 1;
      const next = (): Promise<T> => run(slot);
      const mine = slot.last.then(next, next);
      slot.last = mine;
      return mine;
    }
    const fresh: Running = { pending: 1, last: SETTLED };
    this.#running.set(key, fresh);
    const mine = run(fresh);
    fresh.last = mine;
    return mine;
  }

  /** One call of `slot` (see #inOrder) is over. */
  #settled(key: string, slot: Running): void {
    slot.pending -= 1;
    if (slot.pending === 0 && this.#running.get(key) === slot)
      this.#running.delete(key);
  }

  async #present(
    channel: string,
    member: PresenceUser,
    clientId: string,
    timeoutMs: number,
    checked: PublishRules,
    now: number,
    limit: number | null,
    known: string,
    slot: Running,
  ): Promise<PresenceResult> {
    try {
      const entry = this.#channel(channel);
      const profile = this.#profileOf(member);
      const audience = checked.audience ? audienceJson(checked.audience) : '';
      const shownLimit = checked.maxUsersShown ?? '';
      const rulesSignature = entry.rulesSignature(
        checked.countOnly,
        checked.audience !== null,
        audience,
        shownLimit,
      );
      // The sweep index entry is written BEFORE the state when this process has not seen this client here
      // within its timeout (ZADD LT: it only ever moves a channel's due time earlier). A crash at any
      // instant then leaves at worst an index entry for a channel with nothing due, which the sweeper
      // drops — never a present client that no sweep would ever find (it would stay visible until its keys
      // expire). A heartbeat of a client this process knows writes nothing shared. On one node the two
      // commands go out in order on one connection; a cluster keeps the index in another slot, so it is
      // awaited first.
      const clientKnown = (this.#knownClients.get(known) ?? -Infinity) > now;
      const memberTag = `${member.id}:${this.#clientTag(clientId)}`;
      // On a channel that lists everyone, a present is first tried as the ordinary heartbeat: a small
      // script moves the client's expiry, or answers that the full one must run (the client or its user is
      // not there, the profile or the rules changed, the TTLs or the sweep index are due). It needs no write
      // before it (it never makes a user newly present), so it is tried for clients this process does not
      // know too: at scale most heartbeats reach a process that has not seen the client lately. An enter
      // then costs one more round trip, on a script that answers at its first command.
      let profileWritten = false;
      if (shownLimit === '') {
        const profileWrite =
          profile.refreshAt > now
            ? undefined
            : this.#writeProfile(member.id, profile, now);
        const done = await this.#run('heartbeat', entry.heartbeatKeys, [
          memberTag,
          member.id,
          now + timeoutMs,
          now,
          profile.fingerprint,
          rulesSignature,
        ]);
        if (profileWrite) {
          await profileWrite;
          profileWritten = true;
        }
        if (done === 1) {
          this.#knownClients.set(known, now + timeoutMs);
          return { changed: false, message: null };
        }
      }
      const userJson = JSON.stringify(member);
      const indexFirst = clientKnown
        ? undefined
        : this.#redis.zadd(entry.sweepShard, 'LT', now + timeoutMs, channel);
      // The profile, too, is written before the state that lists the user (a crash in between leaves a
      // profile nobody lists, which expires), whenever this process has not written this very profile
      // lately or does not know the client; a heartbeat of a known client with its known profile writes
      // nothing here either.
      const profileFirst =
        profileWritten || (clientKnown && profile.refreshAt > now)
          ? undefined
          : this.#writeProfile(member.id, profile, now);
      // While events are recorded, a client this process does not know may cause one (its user's first
      // client): the channel goes into the event index first, for the same reason (see EventLog).
      const recording = this.events.recording;
      const eventsFirst =
        recording && !clientKnown
          ? this.#redis.zadd(entry.eventShard, now, channel)
          : undefined;
      if (this.#isCluster && (indexFirst || profileFirst || eventsFirst))
        await Promise.all([indexFirst, profileFirst, eventsFirst]);
      const script = this.#run('present', entry.scriptKeys, [
        memberTag,
        member.id,
        userJson,
        now + timeoutMs,
        now,
        checked.countOnly ? '1' : '0',
        checked.audience ? '1' : '0',
        audience,
        entry.busChannelJson,
        limit === null ? '' : limit,
        profile.fingerprint,
        recording ? '1' : '0',
        shownLimit,
        rulesSignature,
      ]);
      // An ordinary heartbeat wrote nothing first: await the script alone (no array, no extra ticks).
      const reply =
        indexFirst || profileFirst || eventsFirst
          ? (
              await Promise.all([indexFirst, profileFirst, eventsFirst, script])
            )[3]
          : await script;
      const [
        changed,
        messageJson,
        indexAt,
        full,
        newClient,
        firstClient,
        events,
      ] = reply;
      // Refused: nothing was written (the early index entry, if any, is dropped by the sweeper).
      if (full === 1) return { changed: false, message: null, full: true };
      this.#knownClients.set(known, now + timeoutMs);
      // The user is new here although this process believed both written: the store lost its state
      // (a Redis restart), so the profile may be gone too.
      if (changed === 1 && !profileFirst && !profileWritten)
        await this.#writeProfile(member.id, profile, now);
      if (newClient === 1) this.#count(1, firstClient);
      // Events of a client this process believed present (the store lost its state): indexed after the
      // fact, the one case where a crash right here would leave them to the outbox's TTL.
      if (events > 0 && !eventsFirst)
        await this.#indexEvents(channel, entry, now);

      if (indexAt !== null) {
        // The due time got earlier while a sweeper may have been re-scoring the entry (its compare-and-set
        // could have removed it between our first ZADD and the script): write it again. A plain ZADD (not
        // LT): the sweeper's compare-and-set must see the score change even if its stale entry was lower.
        await this.#redis
          .zadd(entry.sweepShard, indexAt, channel)
          .catch((error: unknown) => {
            this.#onError(
              error,
              `could not index ${channel} for the sweep; a later present retries`,
            );
          });
      }
      return { changed: changed === 1, message: parseMessage(messageJson) };
    } finally {
      this.#settled(known, slot);
    }
  }

  // Not `async`, as `present`.
  leave(
    channel: string,
    userId: number,
    clientId: string,
    rules: PublishRules | null,
    now: number,
  ): Promise<PresenceResult> {
    let checked: PublishRules | null;
    try {
      this.#assertOpen();
      checked = checkStoreCall.leave(channel, userId, clientId, rules, now);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    const known = `${channel}\n${userId}:${clientId}`;
    return this.#inOrder(known, (slot) =>
      this.#leave(channel, userId, clientId, checked, now, known, slot),
    );
  }

  async #leave(
    channel: string,
    userId: number,
    clientId: string,
    checked: PublishRules | null,
    now: number,
    known: string,
    slot: Running,
  ): Promise<PresenceResult> {
    try {
      const entry = this.#channel(channel);
      this.#knownClients.delete(known);
      // Indexed before the change that may record events (see EventLog); one connection keeps the order on
      // a single node, a cluster awaits it.
      const recording = this.events.recording;
      const eventsFirst = recording
        ? this.#redis.zadd(entry.eventShard, now, channel)
        : undefined;
      if (this.#isCluster && eventsFirst) await eventsFirst;
      const script = this.#run('leave', entry.scriptKeys, [
        `${userId}:${this.#clientTag(clientId)}`,
        userId,
        now,
        checked ? '1' : '0',
        checked?.countOnly ? '1' : '0',
        checked?.audience ? '1' : '0',
        checked?.audience ? audienceJson(checked.audience) : '',
        entry.busChannelJson,
        recording ? '1' : '0',
      ]);
      const [, [changed, messageJson, removed, lastClient]] = await Promise.all(
        [eventsFirst, script],
      );
      if (removed === 1) this.#count(-1, lastClient === 1 ? -1 : 0);
      return { changed: changed === 1, message: parseMessage(messageJson) };
    } finally {
      this.#settled(known, slot);
    }
  }

  async state(
    channel: string,
    countOnly: boolean,
    now: number,
  ): Promise<ChannelState> {
    this.#assertOpen();
    checkStoreCall.read(channel, now);
    const reply = await this.#run('state', this.#channel(channel).stateKeys, [
      countOnly ? '1' : '0',
      countOnly ? '' : this.#stateCache.versionOf(channel),
    ]);
    const [count, lastId, version] = reply;
    const last_message_id = lastId > 0 ? lastId : null;
    if (countOnly) return { count, last_message_id };
    const cached =
      version === null ? undefined : this.#stateCache.get(channel, version);
    // A copy of the shared list (its frozen users are shared): callers may sort or extend their array.
    if (cached) return { users: cached.slice(), count, last_message_id };
    const ids = new Array<number>(reply.length - 3);
    for (let i = 3; i < reply.length; i++) ids[i - 3] = Number(reply[i]);
    ids.sort((a, b) => a - b);
    const profiles = await this.#readProfiles(ids);
    let complete = true;
    const users = ids.map((id, i) => {
      const user = decodeProfile(id, profiles[i] ?? null);
      if (user) return user;
      // Lost (Redis evicted or restarted without it): shown by id until the user's next present, which
      // writes it again. Such a list is not cached.
      complete = false;
      this.#knownProfiles.delete(id);
      return { id, username: String(id), name: null, avatar_template: '' };
    });
    if (version === null || !complete) return { users, count, last_message_id };
    const shared = this.#stateCache.set(channel, version, users);
    return { users: shared.slice(), count, last_message_id };
  }

  async sweep(now: number): Promise<SweepResult> {
    this.#assertOpen();
    storeArgs.now(now);
    // One shard at a time, so a sweep never has more than one batch of scripts (sweepBatchSize) queued
    // on the connection it shares with presents: all 16 shards at once put up to 3,200 scripts in front
    // of every enter (bench/scale.ts: an enter overlapping a sweep waited up to 458 ms at p99).
    const results: SweepResult[] = [];
    for (let shard = 0; shard < this.keys.sweepShards; shard++)
      results.push(await this.#sweepShard(shard, now));
    return {
      expiredClients: results.reduce(
        (sum, result) => sum + result.expiredClients,
        0,
      ),
      messages: results.flatMap((result) => result.messages),
      lagMs: Math.max(0, ...results.map((result) => result.lagMs)),
    };
  }

  async publish(
    channel: string,
    data: unknown,
    audience: Audience,
    now: number,
  ): Promise<BusMessage> {
    this.#assertOpen();
    const { dataJson, audience: checked } = checkStoreCall.publish(
      channel,
      data,
      audience,
      now,
    );
    const keys = this.keys.bus(channel);
    const json = await this.#run(
      'publish',
      [keys.meta, keys.log, keys.pubsub],
      [JSON.stringify(channel), dataJson, audienceJson(checked), now],
    );
    return JSON.parse(json) as BusMessage;
  }

  async backlog(
    channel: string,
    afterId: number,
    limit?: number,
  ): Promise<BusMessage[]> {
    this.#assertOpen();
    checkStoreCall.backlog(channel, afterId, limit);
    // LIMIT with a negative count: every message.
    const messages = await this.#redis.zrangebyscore(
      this.keys.bus(channel).log,
      `(${afterId}`,
      '+inf',
      'LIMIT',
      0,
      limit ?? -1,
    );
    return messages.map((json) => JSON.parse(json) as BusMessage);
  }

  async lastIds(channels: readonly string[]): Promise<Record<string, number>> {
    this.#assertOpen();
    for (const channel of channels) storeArgs.name(channel, 'channel');
    const ids = await Promise.all(
      channels.map((channel) =>
        this.#redis.hget(this.keys.bus(channel).meta, 'id'),
      ),
    );
    const result: Record<string, number> = {};
    channels.forEach((channel, i) => {
      result[channel] = Number(ids[i] ?? 0);
    });
    return result;
  }

  async subscribe(
    channels: readonly string[],
    listener: BusListener,
  ): Promise<() => Promise<void>> {
    this.#assertOpen();
    const remove = this.#listeners.add(channels, listener);
    try {
      await this.#syncSubscriptions();
    } catch (error) {
      remove();
      throw error;
    }
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      remove();
      if (!this.#closed) await this.#syncSubscriptions();
    };
  }

  async getConfig(
    channel: string,
    now: number,
  ): Promise<CachedConfig | undefined> {
    this.#assertOpen();
    checkStoreCall.read(channel, now);
    const json = await this.#redis.get(this.keys.config(channel));
    if (json === null) return undefined;
    let entry: { config: ChannelConfig | null; expiresAt: number };
    try {
      entry = JSON.parse(json) as typeof entry;
    } catch (error) {
      // Not ours (or from an incompatible version): a miss makes the caller resolve the config again.
      this.#onError(error, `undecodable cached config for ${channel}`);
      return undefined;
    }
    // The expiry is stored in the value too, so the caller's clock decides (Redis' PX only cleans up).
    return typeof entry.expiresAt === 'number' && entry.expiresAt > now
      ? { config: entry.config }
      : undefined;
  }

  async setConfig(
    channel: string,
    config: ChannelConfig | null,
    ttlMs: number,
    now: number,
  ): Promise<void> {
    this.#assertOpen();
    checkStoreCall.setConfig(channel, config, ttlMs, now);
    await this.#redis.set(
      this.keys.config(channel),
      JSON.stringify({ config, expiresAt: now + ttlMs }),
      'PX',
      ttlMs,
    );
  }

  async deleteConfig(channel: string): Promise<void> {
    this.#assertOpen();
    await this.#redis.del(this.keys.config(storeArgs.name(channel, 'channel')));
  }

  async hit(
    key: string,
    windowMs: number,
    now: number,
    limit?: number,
  ): Promise<RateLimitResult> {
    this.#assertOpen();
    const max = checkStoreCall.hit(key, windowMs, now, limit);
    const [count, start] = await this.#run(
      'hit',
      [this.keys.rateLimit(key)],
      [now, windowMs],
    );
    return {
      allowed: count <= max,
      count,
      // Clamped: another process' clock may be a little ahead of ours.
      resetMs: Math.min(windowMs, Math.max(0, Number(start) + windowMs - now)),
    };
  }

  async claimChannels(
    userId: number,
    present: readonly string[],
    leaving: readonly string[],
    cap: number,
    untilMs: number,
    now: number,
  ): Promise<string[]> {
    this.#assertOpen();
    checkStoreCall.claimChannels(userId, present, leaving, cap, untilMs, now);
    if (present.length === 0 && leaving.length === 0) return [];
    return this.#run(
      'claim',
      [this.keys.userChannels(userId)],
      [now, cap, untilMs, present.length, ...present, ...leaving],
    );
  }

  async admitUpdate(
    userId: number,
    admission: UpdateAdmission,
    now: number,
  ): Promise<UpdateAdmissionResult> {
    this.#assertOpen();
    const { rate, claims } = admission;
    storeArgs.id(userId, 'userId');
    const limit = rate
      ? checkStoreCall.hit('update', rate.windowMs, now, rate.limit)
      : undefined;
    if (claims)
      checkStoreCall.claimChannels(
        userId,
        claims.present,
        claims.leaving,
        claims.cap,
        claims.untilMs,
        now,
      );
    else storeArgs.now(now);
    const [count, start, ...refused] = await this.#run(
      'admit',
      [this.keys.userUpdateRate(userId), this.keys.userChannels(userId)],
      [
        now,
        rate ? rate.windowMs : '',
        limit ?? '',
        claims ? claims.cap : '',
        claims ? claims.untilMs : '',
        claims ? claims.present.length : 0,
        ...(claims ? [...claims.present, ...claims.leaving] : []),
      ],
    );
    return {
      rate:
        rate && limit !== undefined
          ? {
              allowed: count <= limit,
              count,
              // Clamped: another process' clock may be a little ahead of ours.
              resetMs: Math.min(
                rate.windowMs,
                Math.max(0, Number(start) + rate.windowMs - now),
              ),
            }
          : null,
      refused,
    };
  }

  async counts(): Promise<StoreCounts> {
    this.#assertOpen();
    await this.#flushCounts();
    const [channels, clients] = await this.#redis.hmget(
      this.keys.counts(),
      'channels',
      'clients',
    );
    // A counter can drift below zero (a process that died between a change and its count, a Redis
    // restart that kept the counters but not the channels): never report less than nothing.
    return {
      channels: Math.max(0, Number(channels ?? 0)),
      clients: Math.max(0, Number(clients ?? 0)),
    };
  }

  async ping(): Promise<void> {
    this.#assertOpen();
    await this.#redis.ping();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#countsTimer !== null) clearTimeout(this.#countsTimer);
    this.#countsTimer = null;
    await this.#flushCounts().catch(() => undefined);
    this.#closed = true;
    this.#listeners.clear();
    this.#subscribed.clear();
    const connections = [
      this.#subscriber,
      this.#ownsConnection ? this.#redis : undefined,
    ];
    this.#subscriber = undefined;
    await Promise.all(
      connections.map(async (connection) => {
        if (!connection) return;
        try {
          await connection.quit();
        } catch {
          // Already closed or never connected: nothing left to release.
          connection.disconnect();
        }
      }),
    );
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new Error(
        'RedisStore is closed: create a new store instead of reusing a closed one',
      );
  }

  /** `clientId`'s tag in the clients sets, computed once per client id while it is in use. */
  #clientTag(clientId: string): string {
    let tag = this.#clientTags.get(clientId);
    if (tag === undefined) {
      tag = clientTag(clientId);
      this.#clientTags.set(clientId, tag);
    }
    return tag;
  }

  /** `user`'s stored form, with when this process last wrote exactly that (or `-Infinity`). */
  #profileOf(user: PresenceUser): KnownProfile {
    const encoded = encodeProfile(user);
    const known = this.#knownProfiles.get(user.id);
    if (known?.encoded === encoded) return known;
    return {
      encoded,
      fingerprint: profileFingerprint(encoded),
      refreshAt: -Infinity,
    };
  }

  /**
   * Writes user `userId`'s profile with {@link PROFILE_TTL_MS} (or the channel TTL when shorter), and
   * remembers it until a quarter of that has passed (least recently used evicted first): until then this
   * process writes it again only for a client it does not know, or an edit. A present user's profile
   * therefore never lapses; a user who left everything leaves one key behind, for at most an hour.
   */
  async #writeProfile(
    userId: number,
    profile: KnownProfile,
    now: number,
  ): Promise<void> {
    const ttlMs = Math.min(this.#channelTtlMs, PROFILE_TTL_MS);
    await this.#redis.set(
      this.keys.userProfile(userId),
      profile.encoded,
      'PX',
      ttlMs,
    );
    this.#knownProfiles.set(userId, {
      ...profile,
      refreshAt: now + Math.floor(ttlMs / 4),
    });
  }

  /**
   * The stored profiles of `ids`, in order (`null` where missing). One MGET per 1,000 on one node; on a
   * cluster the keys live in the users' slots, so one GET each, which ioredis pipelines per node.
   */
  async #readProfiles(ids: readonly number[]): Promise<(string | null)[]> {
    const keys = ids.map((id) => this.keys.userProfile(id));
    if (this.#isCluster)
      return Promise.all(keys.map((key) => this.#redis.get(key)));
    const chunks: Promise<(string | null)[]>[] = [];
    for (let i = 0; i < keys.length; i += PROFILE_READ_CHUNK)
      chunks.push(this.#redis.mget(keys.slice(i, i + PROFILE_READ_CHUNK)));
    return (await Promise.all(chunks)).flat();
  }

  /**
   * Moves the deployment-wide counters (see `counts`) after a change. The deltas are added up here and
   * written at most once per {@link COUNTS_FLUSH_MS} (one HINCRBY per counter), not per call: a command per
   * enter and leave cost them a quarter of their throughput (bench store-ops, A/B). A process that dies
   * loses at most that long of deltas (the gauges drift by them); `counts()` and `close()` write this
   * process' deltas first.
   */
  #count(clients: number, channels: number): void {
    this.#pendingCounts.clients += clients;
    this.#pendingCounts.channels += channels;
    if (this.#countsTimer !== null) return;
    this.#countsTimer = setTimeout(() => {
      this.#countsTimer = null;
      void this.#flushCounts();
    }, COUNTS_FLUSH_MS);
    this.#countsTimer.unref();
  }

  /** Writes the pending counter deltas (errors go to onError: a gauge may drift, presence does not fail). */
  async #flushCounts(): Promise<void> {
    const { clients, channels } = this.#pendingCounts;
    if (clients === 0 && channels === 0) return;
    this.#pendingCounts = { clients: 0, channels: 0 };
    const key = this.keys.counts();
    await Promise.all([
      clients !== 0 ? this.#redis.hincrby(key, 'clients', clients) : null,
      channels !== 0 ? this.#redis.hincrby(key, 'channels', channels) : null,
    ]).catch((error: unknown) =>
      this.#onError(error, 'could not update the presence counters'),
    );
  }

  /** Puts a channel into the event index after its events were recorded (see `present`). */
  async #indexEvents(
    channel: string,
    entry: ChannelEntry,
    now: number,
  ): Promise<void> {
    await this.#redis
      .zadd(entry.eventShard, now, channel)
      .catch((error: unknown) =>
        this.#onError(
          error,
          `could not index ${channel} for its events; they wait in its outbox`,
        ),
      );
  }

  #channel(channel: string): ChannelEntry {
    const cached = this.#channels.get(channel);
    if (cached !== undefined) return cached;
    const keys = this.keys.presence(channel);
    let lastRules = '';
    let lastSignature = '';
    const entry: ChannelEntry = {
      scriptKeys: presenceScriptKeys(keys),
      stateKeys: [keys.users, keys.info, keys.bus.meta, keys.order],
      busChannelJson: JSON.stringify(presenceBusChannel(channel)),
      sweepShard: this.keys.sweepShardOf(channel),
      eventShard: this.keys.eventShardOf(channel),
      heartbeatKeys: [keys.clients, keys.users, keys.info],
      rulesSignature(
        countOnly: boolean,
        publish: boolean,
        audience: string,
        shownLimit: number | '',
      ): string {
        const rules = `${countOnly ? 1 : 0}${publish ? 1 : 0}${shownLimit}|${audience}`;
        if (rules !== lastRules) {
          lastRules = rules;
          lastSignature = rulesSignature(rules);
        }
        return lastSignature;
      },
    };
    this.#channels.set(channel, entry);
    return entry;
  }

  async #sweepShard(index: number, now: number): Promise<SweepResult> {
    const shard = this.keys.sweepShard(index);
    let expiredClients = 0;
    let lagMs = 0;
    let emptied = 0;
    const messages: BusMessage[] = [];
    for (let round = 0; round < MAX_SWEEP_ROUNDS; round++) {
      const entries = await this.#redis.zrangebyscore(
        shard,
        '-inf',
        now,
        'WITHSCORES',
        'LIMIT',
        0,
        this.#sweepBatchSize,
      );
      if (entries.length === 0) break;
      // While events are recorded, the visited channels go into the event index before their sweep (a
      // channel's event shard has its sweep shard's number: one command for the batch).
      const recording = this.events.recording;
      if (recording) {
        const members: (string | number)[] = [];
        for (let i = 0; i < entries.length; i += 2)
          members.push(now, entries[i]!);
        await this.#redis.zadd(this.keys.eventShard(index), ...members);
      }
      const visits: Promise<void>[] = [];
      for (let i = 0; i < entries.length; i += 2) {
        const channel = entries[i]!;
        const visitedScore = entries[i + 1]!;
        visits.push(
          (async () => {
            const entry = this.#channel(channel);
            const [expired, nextDue, messageJson, oldest, lastClient] =
              await this.#run('sweep', entry.scriptKeys, [
                now,
                entry.busChannelJson,
                recording ? '1' : '0',
              ]);
            expiredClients += expired;
            emptied += lastClient;
            if (oldest !== null) lagMs = Math.max(lagMs, now - Number(oldest));
            const message = parseMessage(messageJson);
            if (message) messages.push(message);
            await this.#run(
              'rescore',
              [shard],
              [channel, visitedScore, nextDue ?? ''],
            );
          })(),
        );
      }
      // Every visit finishes before the sweep reports anything, so no script is still running after a rejection.
      const failure = (await Promise.allSettled(visits)).find(
        (outcome) => outcome.status === 'rejected',
      );
      if (failure) throw failure.reason;
      if (entries.length < this.#sweepBatchSize * 2) break;
    }
    if (expiredClients > 0) this.#count(-expiredClients, -emptied);
    return { expiredClients, messages, lagMs };
  }

  #syncSubscriptions(): Promise<void> {
    const run = this.#syncChain.then(() => this.#reconcileSubscriptions());
    this.#syncChain = run.catch(() => undefined);
    return run;
  }

  /** Brings the SSUBSCRIBEd shard channels in line with the bus channels that have listeners. */
  async #reconcileSubscriptions(): Promise<void> {
    if (this.#closed) return;
    const wanted = new Map(
      this.#listeners
        .channels()
        .map((channel) => [this.keys.bus(channel).pubsub, channel]),
    );
    const toAdd = [...wanted.keys()].filter(
      (shard) => !this.#subscribed.has(shard),
    );
    const toRemove = [...this.#subscribed.keys()].filter(
      (shard) => !wanted.has(shard),
    );
    if (toAdd.length === 0 && toRemove.length === 0) return;
    const subscriber = this.#getSubscriber();
    for (const shard of toRemove) this.#subscribed.delete(shard);
    for (const shard of toAdd) this.#subscribed.set(shard, wanted.get(shard)!);
    try {
      // One command per shard channel: on a cluster, one SSUBSCRIBE may only name channels of one slot.
      await Promise.all([
        ...toAdd.map((shard) => subscriber.ssubscribe(shard)),
        ...toRemove.map((shard) => subscriber.sunsubscribe(shard)),
      ]);
    } catch (error) {
      for (const shard of toAdd) this.#subscribed.delete(shard);
      throw error;
    }
  }

  #getSubscriber(): RedisConnection {
    if (this.#subscriber) return this.#subscriber;
    const subscriber = this.#isCluster
      ? (this.#redis as Cluster).duplicate([], { shardedSubscribers: true })
      : (this.#redis as Redis).duplicate();
    subscriber.on('smessage', (shard: string, json: string) =>
      this.#deliver(shard, json),
    );
    subscriber.on('error', (error: unknown) =>
      this.#onError(error, 'subscriber connection error'),
    );
    this.#subscriber = subscriber;
    return subscriber;
  }

  #deliver(shard: string, json: string): void {
    const channel = this.#subscribed.get(shard);
    if (channel === undefined || !this.#listeners.has(channel)) return;
    let message: BusMessage;
    try {
      message = JSON.parse(json) as BusMessage;
    } catch (error) {
      this.#onError(error, `undecodable message on ${shard}`);
      return;
    }
    if (message.channel !== channel) {
      this.#onError(
        new Error(`a message of ${message.channel} arrived on ${shard}`),
        'misrouted message',
      );
      return;
    }
    this.#listeners.deliver(message);
  }
}

function keyPrefixError(prefix: string): TypeError {
  return new TypeError(
    `RedisStore cannot use ioredis' keyPrefix ${JSON.stringify(prefix)}: pass it as the RedisStore ` +
      'keyPrefix option instead, so that shard channels get it too and the scripts see real key names',
  );
}

/** The audience lists as a JSON fragment appended to the message object by the scripts. */
function audienceJson(audience: Audience): string {
  let json = '';
  if (audience.userIds?.length)
    json += `,"user_ids":${JSON.stringify(audience.userIds)}`;
  if (audience.groupIds?.length)
    json += `,"group_ids":${JSON.stringify(audience.groupIds)}`;
  if (audience.clientIds?.length)
    json += `,"client_ids":${JSON.stringify(audience.clientIds)}`;
  return json;
}

function parseMessage(json: string | null): BusMessage | null {
  return json === null ? null : (JSON.parse(json) as BusMessage);
}
