/* eslint-disable @typescript-eslint/require-await --
   The methods are async without awaiting on purpose: every failure (a bad argument, a closed store) must
   reject the returned promise as the contract says, never throw synchronously at the call site. */
import type {
  BusListener,
  CachedConfig,
  PresenceResult,
  PresenceStore,
  PublishRules,
  RateLimitResult,
  SweepResult,
} from './store.js';
import type {
  Audience,
  BusMessage,
  ChannelConfig,
  ChannelState,
  PresenceUser,
} from './types.js';

/** How long and how much both stores keep. Every field is optional. */
export interface RetentionOptions {
  /** Messages kept per bus channel (MessageBus' default). Default 1000. */
  backlogSize?: number;
  /** A bus channel's backlog is dropped after this long without activity. Default 7 days. */
  backlogTtlMs?: number;
  /** A presence channel's data is dropped after this long without activity. Default 24 hours. */
  channelTtlMs?: number;
  /**
   * What is left of a presence channel once nobody is in it (its publish rules and its backlog) is
   * dropped this long after the last client left or expired, instead of after the long TTLs above.
   * Default 10 minutes: enough for a client that lost its connection for a while to catch up from the
   * backlog; one that comes back later resyncs (the ids of a new backlog jump, see firstMessageIdBase).
   */
  emptyChannelTtlMs?: number;
}

/** Options of {@link MemoryStore}. Every field is optional. */
export interface MemoryStoreOptions extends RetentionOptions {
  /**
   * Receives what a `subscribe` listener throws, so one faulty listener can neither break the
   * operation that published nor starve the other listeners. Default: `console.error`.
   */
  onListenerError?: (error: unknown, message: BusMessage) => void;
}

/** 1000 messages: what MessageBus keeps per channel, enough for a client that was away a few minutes. */
export const DEFAULT_BACKLOG_SIZE = 1000;
/** Backlogs live 7 days after their last message, like MessageBus' default `max_backlog_age`. */
export const DEFAULT_BACKLOG_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Presence channels are garbage-collected 24 h after their last activity (SPEC §2.1). */
export const DEFAULT_CHANNEL_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * An empty presence channel's rules and backlog go 10 minutes after it emptied: one user entering and
 * leaving fresh names within the rate limit otherwise left ~1.3 GB an hour behind (backlogs kept 7 days).
 */
export const DEFAULT_EMPTY_CHANNEL_TTL_MS = 10 * 60 * 1000;

/** The retention options with defaults applied; throws a TypeError naming a bad one. */
export function retention(
  options: RetentionOptions,
): Required<RetentionOptions> {
  return {
    backlogSize: storeArgs.count(
      options.backlogSize ?? DEFAULT_BACKLOG_SIZE,
      'backlogSize',
    ),
    backlogTtlMs: storeArgs.duration(
      options.backlogTtlMs ?? DEFAULT_BACKLOG_TTL_MS,
      'backlogTtlMs',
    ),
    channelTtlMs: storeArgs.duration(
      options.channelTtlMs ?? DEFAULT_CHANNEL_TTL_MS,
      'channelTtlMs',
    ),
    emptyChannelTtlMs: storeArgs.duration(
      options.emptyChannelTtlMs ?? DEFAULT_EMPTY_CHANNEL_TTL_MS,
      'emptyChannelTtlMs',
    ),
  };
}

/**
 * `global_id` = max(previous + 1, now × 1000): strictly increasing, sorted by time across channels (it
 * runs ahead of the clock only after 1000 messages in one millisecond), and exact in a double until the
 * year 2255. MemoryStore keeps one "previous" for the whole store (so ids are unique store-wide); the
 * RedisStore keeps one per channel, because a global key cannot be updated from a per-channel script on
 * a cluster (unique and increasing per channel, time-ordered across channels).
 */
export const GLOBAL_IDS_PER_MS = 1000;

/**
 * The id before the first message of a backlog created at `now`: `now × 1000` (0 with a clock at 0, as in
 * tests). Message ids of one backlog are consecutive from `base + 1`, and a backlog created again after
 * the store lost it (Redis restarted empty, flushed, failed over to a replica that lost writes, a server
 * on the memory store restarted) starts above every id the lost one could have reached (unless it
 * averaged more than 1000 messages per millisecond over its life). A client that lived through the
 * reset polls from its old id, receives `base + 1`, which is not `old + 1`, and resyncs by itself — a
 * Discourse client too. Exact in a double until the year 2255. docs/protocol.md, "Message ids".
 */
export function firstMessageIdBase(now: number): number {
  return Math.max(0, Math.floor(now)) * GLOBAL_IDS_PER_MS;
}

/** The MessageBus channel that carries the change messages of presence channel `channel`. */
export function presenceBusChannel(channel: string): string {
  return `/presence${channel}`;
}

/**
 * The argument checks shared by every `PresenceStore` implementation: the core validates requests, and
 * these guard the store itself against a programming error corrupting stored state. Each throws a
 * `TypeError` that names the argument and what it must be.
 */
export const storeArgs = {
  /** A non-empty string (channel names, client ids, keys). */
  name(value: unknown, what: string): string {
    if (typeof value !== 'string' || value.length === 0) {
      throw new TypeError(
        `${what} must be a non-empty string, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A time in ms since the epoch, as passed to every store call. */
  now(value: unknown): number {
    if (
      typeof value !== 'number' ||
      !Number.isSafeInteger(value) ||
      value < 0
    ) {
      throw new TypeError(
        `now must be a non-negative integer of milliseconds, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A strictly positive duration in ms. */
  duration(value: unknown, what: string): number {
    return positiveInteger(value, what, 'a positive integer of milliseconds');
  },

  /** A user or group id. */
  id(value: unknown, what: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new TypeError(
        `${what} must be a safe integer, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A message id to read after (`backlog`); any integer, negative ones mean "everything". */
  afterId(value: unknown): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new TypeError(
        `afterId must be an integer message id, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A user reduced to exactly the four fields messages and state carry. */
  user(value: unknown): PresenceUser {
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(
        `user must be an object {id, username, name, avatar_template}, got ${describe(value)}`,
      );
    }
    const user = value as Record<string, unknown>;
    const id = storeArgs.id(user['id'], 'user.id');
    if (typeof user['username'] !== 'string') {
      throw new TypeError(
        `user.username must be a string, got ${describe(user['username'])}`,
      );
    }
    const name = user['name'] ?? null;
    if (name !== null && typeof name !== 'string') {
      throw new TypeError(
        `user.name must be a string or null, got ${describe(name)}`,
      );
    }
    if (typeof user['avatar_template'] !== 'string') {
      throw new TypeError(
        `user.avatar_template must be a string, got ${describe(user['avatar_template'])}`,
      );
    }
    return {
      id,
      username: user['username'],
      name,
      avatar_template: user['avatar_template'],
    };
  },

  /** Publish rules; `audience: null` means nobody may view. */
  rules(value: unknown): PublishRules {
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(
        `rules must be {countOnly, audience}, got ${describe(value)}`,
      );
    }
    const rules = value as Record<string, unknown>;
    if (typeof rules['countOnly'] !== 'boolean') {
      throw new TypeError(
        `rules.countOnly must be a boolean, got ${describe(rules['countOnly'])}`,
      );
    }
    const audience =
      rules['audience'] === null ? null : storeArgs.audience(rules['audience']);
    return { countOnly: rules['countOnly'], audience };
  },

  /** An audience with its lists checked and empty lists dropped (an empty list is the same as absent). */
  audience(value: unknown): Audience {
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(
        `audience must be {userIds?, groupIds?, clientIds?}, got ${describe(value)}`,
      );
    }
    const input = value as Record<string, unknown>;
    const audience: Audience = {};
    const userIds = idList(input['userIds'], 'audience.userIds');
    const groupIds = idList(input['groupIds'], 'audience.groupIds');
    const clientIds = stringList(input['clientIds'], 'audience.clientIds');
    if (userIds) audience.userIds = userIds;
    if (groupIds) audience.groupIds = groupIds;
    if (clientIds) audience.clientIds = clientIds;
    return audience;
  },

  /** Message data, which must survive a JSON round trip (the Redis store stores JSON). */
  data(value: unknown): string {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      throw new TypeError(
        `message data must be JSON-serializable: ${String(error)}`,
      );
    }
    if (json === undefined) {
      throw new TypeError(
        `message data must be JSON-serializable, got ${describe(value)}`,
      );
    }
    return json;
  },

  /** A backlog size. */
  count(value: unknown, what: string): number {
    return positiveInteger(value, what, 'a positive integer');
  },

  /** An optional rate limit: a positive integer, or absent/Infinity for "just count". */
  limit(value: unknown): number {
    if (value === undefined || value === Infinity) return Infinity;
    if (
      typeof value !== 'number' ||
      !Number.isSafeInteger(value) ||
      value <= 0
    ) {
      throw new TypeError(
        `limit must be a positive integer, got ${describe(value)}`,
      );
    }
    return value;
  },
};

/**
 * The argument checks of each store operation, so both stores reject the same calls the same way. Each
 * returns the checked values the store goes on with.
 */
export const checkStoreCall = {
  present(
    channel: string,
    user: PresenceUser,
    clientId: string,
    timeoutMs: number,
    rules: PublishRules,
    now: number,
  ): { user: PresenceUser; rules: PublishRules } {
    storeArgs.name(channel, 'channel');
    const member = storeArgs.user(user);
    storeArgs.name(clientId, 'clientId');
    storeArgs.duration(timeoutMs, 'timeoutMs');
    const checked = storeArgs.rules(rules);
    storeArgs.now(now);
    return { user: member, rules: checked };
  },

  leave(
    channel: string,
    userId: number,
    clientId: string,
    rules: PublishRules | null,
    now: number,
  ): PublishRules | null {
    storeArgs.name(channel, 'channel');
    storeArgs.id(userId, 'userId');
    storeArgs.name(clientId, 'clientId');
    const checked = rules === null ? null : storeArgs.rules(rules);
    storeArgs.now(now);
    return checked;
  },

  /** `state` and `getConfig`. */
  read(channel: string, now: number): void {
    storeArgs.name(channel, 'channel');
    storeArgs.now(now);
  },

  publish(
    channel: string,
    data: unknown,
    audience: Audience,
    now: number,
  ): { dataJson: string; audience: Audience } {
    storeArgs.name(channel, 'channel');
    const dataJson = storeArgs.data(data);
    const checked = storeArgs.audience(audience);
    storeArgs.now(now);
    return { dataJson, audience: checked };
  },

  backlog(channel: string, afterId: number, limit?: number): void {
    storeArgs.name(channel, 'channel');
    storeArgs.afterId(afterId);
    if (limit !== undefined) storeArgs.count(limit, 'limit');
  },

  /** Returns the config as JSON. */
  setConfig(
    channel: string,
    config: ChannelConfig | null,
    ttlMs: number,
    now: number,
  ): string {
    storeArgs.name(channel, 'channel');
    storeArgs.duration(ttlMs, 'ttlMs');
    const json = storeArgs.data(config);
    storeArgs.now(now);
    return json;
  },

  claimChannels(
    userId: number,
    present: readonly string[],
    leaving: readonly string[],
    cap: number,
    untilMs: number,
    now: number,
  ): void {
    storeArgs.id(userId, 'userId');
    for (const name of [...present, ...leaving])
      storeArgs.name(name, 'channel');
    storeArgs.count(cap, 'cap');
    storeArgs.now(untilMs);
    storeArgs.now(now);
  },

  /** Returns the limit (`Infinity` when absent). */
  hit(key: string, windowMs: number, now: number, limit?: number): number {
    storeArgs.name(key, 'key');
    storeArgs.duration(windowMs, 'windowMs');
    const max = storeArgs.limit(limit);
    storeArgs.now(now);
    return max;
  },
};

/**
 * The MessageBus wire shape of a message: ids, channel, data, then the audience lists that are non-empty.
 * Both stores build it this way so their messages are identical.
 */
export function buildMessage(
  globalId: number,
  messageId: number,
  channel: string,
  data: unknown,
  audience: Audience,
): BusMessage {
  const message: BusMessage = {
    global_id: globalId,
    message_id: messageId,
    channel,
    data,
  };
  if (audience.userIds?.length) message.user_ids = [...audience.userIds];
  if (audience.groupIds?.length) message.group_ids = [...audience.groupIds];
  if (audience.clientIds?.length) message.client_ids = [...audience.clientIds];
  return message;
}

function positiveInteger(
  value: unknown,
  what: string,
  expected: string,
): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${what} must be ${expected}, got ${describe(value)}`);
  }
  return value;
}

function idList(value: unknown, what: string): number[] | undefined {
  return list(value, what, 'ids', (id, at) => storeArgs.id(id, at));
}

function stringList(value: unknown, what: string): string[] | undefined {
  return list(value, what, 'strings', (item, at) => storeArgs.name(item, at));
}

/** A checked list, or `undefined` for an absent or empty one (an empty list is the same as absent). */
function list<T>(
  value: unknown,
  what: string,
  items: string,
  check: (item: unknown, what: string) => T,
): T[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) {
    throw new TypeError(
      `${what} must be an array of ${items}, got ${describe(value)}`,
    );
  }
  const checked = value.map((item, i) => check(item, `${what}[${i}]`));
  return checked.length > 0 ? checked : undefined;
}

function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

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

interface ClientEntry {
  userId: number;
  expiresAt: number;
}

interface Member {
  user: PresenceUser;
  clients: number;
}

interface ChannelData {
  /** Keyed by `${userId}:${clientId}`, so a tab that switches user is two clients. */
  clients: Map<string, ClientEntry>;
  members: Map<number, Member>;
  rules: PublishRules | null;
  lastActivity: number;
  /** The due time of this channel's live entry in the sweep heap; `Infinity` when it has none. */
  scheduledDue: number;
}

interface Backlog {
  /** JSON, like the Redis store, so no caller can alias stored messages. */
  messages: string[];
  /** `message_id` of `messages[0]`; ids are consecutive. */
  firstId: number;
  lastId: number;
  lastActivity: number;
}

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

interface RateWindow {
  start: number;
  count: number;
  expiresAt: number;
}

/**
 * The embedded `PresenceStore`: one process, no dependencies, no timers, no Node APIs, so the
 * test-support fake server runs it in the browser. It is the reference implementation of the contract in
 * `store.ts`.
 *
 * @example
 * const store = new MemoryStore();
 * await store.present('/site/online', user, clientId, 60_000, { countOnly: false, audience: {} }, Date.now());
 *
 * Every operation completes synchronously inside its promise, so state changes apply in call order and
 * listeners are notified synchronously, right after the change, before the call's promise resolves.
 * Expired data is dropped lazily using the largest `now` the store has been given (calls without `now`,
 * like `backlog`, use that one), so an injected clock drives garbage collection too.
 */
export class MemoryStore implements PresenceStore {
  readonly #backlogSize: number;
  readonly #backlogTtlMs: number;
  readonly #channelTtlMs: number;
  readonly #emptyChannelTtlMs: number;

  /** Maps below are kept in order of last activity (re-inserted on touch), so GC stops at the first live entry. */
  readonly #channels = new Map<string, ChannelData>();
  readonly #backlogs = new Map<string, Backlog>();
  readonly #configs = new Map<string, Expiring<string>>();
  readonly #windows = new Map<string, RateWindow>();
  readonly #listeners: ListenerRegistry;
  readonly #sweepHeap = new DueHeap();

  #lastGlobalId = 0;
  #latestNow = 0;
  #closed = false;
  /**
   * Backlogs of presence channels nobody is in → when they go (insertion order is deadline order: every
   * entry gets the same TTL and is re-inserted when the channel empties again).
   */
  readonly #emptyBacklogs = new Map<string, number>();
  /** Per user: channel → until when its slot of the per-user cap is held (lapsed ones dropped on use). */
  readonly #userChannels = new Map<number, Map<string, number>>();

  constructor(options: MemoryStoreOptions = {}) {
    ({
      backlogSize: this.#backlogSize,
      backlogTtlMs: this.#backlogTtlMs,
      channelTtlMs: this.#channelTtlMs,
      emptyChannelTtlMs: this.#emptyChannelTtlMs,
    } = retention(options));
    this.#listeners = new ListenerRegistry(options.onListenerError);
  }

  async present(
    channel: string,
    user: PresenceUser,
    clientId: string,
    timeoutMs: number,
    rules: PublishRules,
    now: number,
  ): Promise<PresenceResult> {
    this.#assertOpen();
    const { user: member, rules: checkedRules } = checkStoreCall.present(
      channel,
      user,
      clientId,
      timeoutMs,
      rules,
      now,
    );
    this.#advance(now);

    const data = this.#channelData(channel, now) ?? this.#newChannel(channel);
    data.rules = checkedRules;
    this.#touchChannel(channel, data, now);
    this.#touchBacklog(presenceBusChannel(channel), now);
    this.#emptyBacklogs.delete(presenceBusChannel(channel));

    const key = `${member.id}:${clientId}`;
    const expiresAt = now + timeoutMs;
    const existing = data.clients.get(key);
    let changed = false;
    if (existing) {
      // A heartbeat: only the expiry moves (and the profile, which may have been edited).
      existing.expiresAt = expiresAt;
      const current = data.members.get(member.id);
      if (current) current.user = member;
    } else {
      data.clients.set(key, { userId: member.id, expiresAt });
      const current = data.members.get(member.id);
      if (current) {
        current.clients += 1;
        current.user = member;
      } else {
        data.members.set(member.id, { user: member, clients: 1 });
        changed = true;
      }
    }
    this.#schedule(channel, data, expiresAt);

    const message = changed
      ? this.#publishChange(
          channel,
          checkedRules,
          checkedRules.countOnly
            ? { count_delta: 1 }
            : { entering_users: [member] },
          now,
        )
      : null;
    return { changed, message };
  }

  async leave(
    channel: string,
    userId: number,
    clientId: string,
    rules: PublishRules | null,
    now: number,
  ): Promise<PresenceResult> {
    this.#assertOpen();
    const checkedRules = checkStoreCall.leave(
      channel,
      userId,
      clientId,
      rules,
      now,
    );
    this.#advance(now);

    const data = this.#channelData(channel, now);
    const key = `${userId}:${clientId}`;
    if (!data || !data.clients.delete(key))
      return { changed: false, message: null };

    if (checkedRules) data.rules = checkedRules;
    this.#touchChannel(channel, data, now);
    this.#touchBacklog(presenceBusChannel(channel), now);
    // Removing a client can only make the channel's earliest expiry later: the sweep heap is left alone
    // and the sweep re-schedules the channel when it visits it.
    const member = data.members.get(userId);
    if (member && member.clients > 1) {
      member.clients -= 1;
      return { changed: false, message: null };
    }
    data.members.delete(userId);
    const effective = data.rules;
    const message = effective
      ? this.#publishChange(
          channel,
          effective,
          effective.countOnly
            ? { count_delta: -1 }
            : { leaving_user_ids: [userId] },
          now,
        )
      : null;
    if (data.clients.size === 0) this.#emptied(channel, now);
    return { changed: true, message };
  }

  async state(
    channel: string,
    countOnly: boolean,
    now: number,
  ): Promise<ChannelState> {
    this.#assertOpen();
    checkStoreCall.read(channel, now);
    this.#advance(now);
    const data = this.#channelData(channel, now);
    const lastId = this.#backlogOf(presenceBusChannel(channel))?.lastId ?? 0;
    const count = data?.members.size ?? 0;
    const last_message_id = lastId > 0 ? lastId : null;
    if (countOnly) return { count, last_message_id };
    const users = data
      ? [...data.members.values()]
          .map((m) => ({ ...m.user }))
          .sort((a, b) => a.id - b.id)
      : [];
    return { users, count, last_message_id };
  }

  async sweep(now: number): Promise<SweepResult> {
    this.#assertOpen();
    this.#advance(storeArgs.now(now));
    for (const [userId, held] of this.#userChannels) {
      for (const [name, until] of held) if (until <= now) held.delete(name);
      if (held.size === 0) this.#userChannels.delete(userId);
    }
    const messages: BusMessage[] = [];
    let expiredClients = 0;
    for (
      let entry = this.#sweepHeap.peek();
      entry && entry.due <= now;
      entry = this.#sweepHeap.peek()
    ) {
      this.#sweepHeap.pop();
      const data = this.#channels.get(entry.channel);
      // Stale heap entries (the channel was re-scheduled earlier, or dropped) are skipped.
      if (!data || data.scheduledDue !== entry.due) continue;
      data.scheduledDue = Infinity;

      const leftUserIds: number[] = [];
      let expiredHere = 0;
      for (const [key, client] of data.clients) {
        if (client.expiresAt > now) continue;
        data.clients.delete(key);
        expiredHere += 1;
        const member = data.members.get(client.userId);
        if (member && member.clients > 1) {
          member.clients -= 1;
        } else {
          data.members.delete(client.userId);
          leftUserIds.push(client.userId);
        }
      }
      let next = Infinity;
      for (const client of data.clients.values())
        next = Math.min(next, client.expiresAt);
      if (next !== Infinity) this.#schedule(entry.channel, data, next);

      expiredClients += expiredHere;
      if (expiredHere === 0) continue;
      this.#touchChannel(entry.channel, data, now);
      this.#touchBacklog(presenceBusChannel(entry.channel), now);
      if (leftUserIds.length === 0 || !data.rules) {
        if (data.clients.size === 0) this.#emptied(entry.channel, now);
        continue;
      }
      const change = data.rules.countOnly
        ? { count_delta: -leftUserIds.length }
        : { leaving_user_ids: leftUserIds };
      const message = this.#publishChange(
        entry.channel,
        data.rules,
        change,
        now,
      );
      if (message) messages.push(message);
      if (data.clients.size === 0) this.#emptied(entry.channel, now);
    }
    return { expiredClients, messages };
  }

  async publish(
    channel: string,
    data: unknown,
    audience: Audience,
    now: number,
  ): Promise<BusMessage> {
    this.#assertOpen();
    const checked = checkStoreCall.publish(channel, data, audience, now);
    this.#advance(now);
    return this.#append(channel, checked.dataJson, checked.audience, now);
  }

  async backlog(
    channel: string,
    afterId: number,
    limit?: number,
  ): Promise<BusMessage[]> {
    this.#assertOpen();
    checkStoreCall.backlog(channel, afterId, limit);
    this.#collectGarbage(this.#latestNow);
    const backlog = this.#backlogOf(channel);
    if (!backlog) return [];
    const start = Math.max(0, afterId - backlog.firstId + 1);
    return backlog.messages
      .slice(start, limit === undefined ? undefined : start + limit)
      .map((json) => JSON.parse(json) as BusMessage);
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
    this.#advance(now);
    const held = this.#userChannels.get(userId) ?? new Map<string, number>();
    for (const [name, until] of held) if (until <= now) held.delete(name);
    for (const name of leaving) held.delete(name);
    const refused: string[] = [];
    for (const name of present) {
      const until = held.get(name);
      if (until !== undefined) held.set(name, Math.max(until, untilMs));
      else if (held.size < cap) held.set(name, untilMs);
      else refused.push(name);
    }
    if (held.size > 0) this.#userChannels.set(userId, held);
    else this.#userChannels.delete(userId);
    return refused;
  }

  async lastIds(channels: readonly string[]): Promise<Record<string, number>> {
    this.#assertOpen();
    this.#collectGarbage(this.#latestNow);
    const result: Record<string, number> = {};
    for (const channel of channels) {
      storeArgs.name(channel, 'channel');
      result[channel] = this.#backlogOf(channel)?.lastId ?? 0;
    }
    return result;
  }

  async subscribe(
    channels: readonly string[],
    listener: BusListener,
  ): Promise<() => Promise<void>> {
    this.#assertOpen();
    const remove = this.#listeners.add(channels, listener);
    return async () => remove();
  }

  async getConfig(
    channel: string,
    now: number,
  ): Promise<CachedConfig | undefined> {
    this.#assertOpen();
    checkStoreCall.read(channel, now);
    this.#advance(now);
    const entry = this.#configs.get(channel);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.#configs.delete(channel);
      return undefined;
    }
    return { config: JSON.parse(entry.value) as ChannelConfig | null };
  }

  async setConfig(
    channel: string,
    config: ChannelConfig | null,
    ttlMs: number,
    now: number,
  ): Promise<void> {
    this.#assertOpen();
    const value = checkStoreCall.setConfig(channel, config, ttlMs, now);
    this.#advance(now);
    this.#configs.delete(channel);
    this.#configs.set(channel, { value, expiresAt: now + ttlMs });
  }

  async deleteConfig(channel: string): Promise<void> {
    this.#assertOpen();
    this.#configs.delete(storeArgs.name(channel, 'channel'));
  }

  async hit(
    key: string,
    windowMs: number,
    now: number,
    limit?: number,
  ): Promise<RateLimitResult> {
    this.#assertOpen();
    const max = checkStoreCall.hit(key, windowMs, now, limit);
    this.#advance(now);
    let window = this.#windows.get(key);
    if (!window || window.expiresAt <= now) {
      // The window opens at the first hit, so `resetMs` is exact for Retry-After.
      this.#windows.delete(key);
      window = { start: now, count: 0, expiresAt: now + windowMs };
      this.#windows.set(key, window);
    }
    window.count += 1;
    return {
      allowed: window.count <= max,
      count: window.count,
      // Clamped like the RedisStore's, where another process' clock may be ahead.
      resetMs: Math.min(windowMs, window.expiresAt - now),
    };
  }

  async ping(): Promise<void> {
    this.#assertOpen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#channels.clear();
    this.#backlogs.clear();
    this.#configs.clear();
    this.#windows.clear();
    this.#listeners.clear();
    this.#sweepHeap.clear();
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new Error(
        'MemoryStore is closed: create a new store instead of reusing a closed one',
      );
  }

  /** Records the newest time seen and drops what expired by then. */
  #advance(now: number): void {
    if (now > this.#latestNow) this.#latestNow = now;
    this.#collectGarbage(now);
  }

  /**
   * Nobody is in `channel` any more: its data goes now, its backlog `emptyChannelTtlMs` later (unless
   * someone enters before).
   */
  #emptied(channel: string, now: number): void {
    this.#channels.delete(channel);
    const bus = presenceBusChannel(channel);
    this.#emptyBacklogs.delete(bus);
    this.#emptyBacklogs.set(bus, now + this.#emptyChannelTtlMs);
  }

  #collectGarbage(now: number): void {
    for (const [bus, deadline] of this.#emptyBacklogs) {
      if (deadline > now) break;
      this.#emptyBacklogs.delete(bus);
      this.#backlogs.delete(bus);
    }
    dropExpired(
      this.#channels,
      (data) => data.lastActivity + this.#channelTtlMs <= now,
    );
    dropExpired(
      this.#backlogs,
      (backlog) => backlog.lastActivity + this.#backlogTtlMs <= now,
    );
    dropExpired(this.#configs, (entry) => entry.expiresAt <= now);
    dropExpired(this.#windows, (window) => window.expiresAt <= now);
  }

  #channelData(channel: string, now: number): ChannelData | undefined {
    const data = this.#channels.get(channel);
    // The ordered GC only sees the front; a clock that went backwards can leave an expired entry behind it.
    if (data && data.lastActivity + this.#channelTtlMs <= now) {
      this.#channels.delete(channel);
      return undefined;
    }
    return data;
  }

  #newChannel(channel: string): ChannelData {
    const data: ChannelData = {
      clients: new Map(),
      members: new Map(),
      rules: null,
      lastActivity: 0,
      scheduledDue: Infinity,
    };
    this.#channels.set(channel, data);
    return data;
  }

  #touchChannel(channel: string, data: ChannelData, now: number): void {
    data.lastActivity = Math.max(data.lastActivity, now);
    this.#channels.delete(channel);
    this.#channels.set(channel, data);
  }

  #backlogOf(channel: string): Backlog | undefined {
    const backlog = this.#backlogs.get(channel);
    if (
      backlog &&
      backlog.lastActivity + this.#backlogTtlMs <= this.#latestNow
    ) {
      this.#backlogs.delete(channel);
      return undefined;
    }
    return backlog;
  }

  /** Presence activity keeps the channel's backlog (and so its message ids) alive, as in the Redis store. */
  #touchBacklog(channel: string, now: number): void {
    const backlog = this.#backlogOf(channel);
    if (!backlog) return;
    backlog.lastActivity = Math.max(backlog.lastActivity, now);
    this.#backlogs.delete(channel);
    this.#backlogs.set(channel, backlog);
  }

  /** Makes sure the sweep visits `channel` by `due`; only an earlier due time adds a heap entry. */
  #schedule(channel: string, data: ChannelData, due: number): void {
    if (due >= data.scheduledDue) return;
    data.scheduledDue = due;
    this.#sweepHeap.push({ due, channel });
  }

  #publishChange(
    channel: string,
    rules: PublishRules,
    change: unknown,
    now: number,
  ): BusMessage | null {
    // A channel nobody may view changes state but publishes nothing, and consumes no message id.
    if (rules.audience === null) return null;
    return this.#append(
      presenceBusChannel(channel),
      JSON.stringify(change),
      rules.audience,
      now,
    );
  }

  #append(
    channel: string,
    dataJson: string,
    audience: Audience,
    now: number,
  ): BusMessage {
    let backlog = this.#backlogOf(channel);
    if (!backlog) {
      const base = firstMessageIdBase(now);
      backlog = {
        messages: [],
        firstId: base + 1,
        lastId: base,
        lastActivity: now,
      };
      this.#backlogs.set(channel, backlog);
    }
    this.#lastGlobalId = Math.max(
      this.#lastGlobalId + 1,
      now * GLOBAL_IDS_PER_MS,
    );
    backlog.lastId += 1;
    const message = buildMessage(
      this.#lastGlobalId,
      backlog.lastId,
      channel,
      JSON.parse(dataJson),
      audience,
    );
    const json = JSON.stringify(message);
    backlog.messages.push(json);
    if (backlog.messages.length > this.#backlogSize) {
      const overflow = backlog.messages.length - this.#backlogSize;
      backlog.messages.splice(0, overflow);
    }
    backlog.firstId = backlog.lastId - backlog.messages.length + 1;
    backlog.lastActivity = Math.max(backlog.lastActivity, now);
    this.#backlogs.delete(channel);
    this.#backlogs.set(channel, backlog);
    this.#notify(channel, json);
    return JSON.parse(json) as BusMessage;
  }

  #notify(channel: string, json: string): void {
    if (!this.#listeners.has(channel)) return;
    // One parsed copy for all listeners (as the Redis store delivers one), separate from the caller's.
    this.#listeners.deliver(JSON.parse(json) as BusMessage);
  }
}

function dropExpired<T>(
  map: Map<string, T>,
  expired: (value: T) => boolean,
): void {
  for (const [key, value] of map) {
    if (!expired(value)) return;
    map.delete(key);
  }
}

interface DueEntry {
  due: number;
  channel: string;
}

/** A binary min-heap of channels by due time, so a sweep visits only channels with something due. */
class DueHeap {
  #items: DueEntry[] = [];

  peek(): DueEntry | undefined {
    return this.#items[0];
  }

  push(entry: DueEntry): void {
    const items = this.#items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.due <= entry.due) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): DueEntry | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child =
        right < items.length && items[right]!.due < items[left]!.due
          ? right
          : left;
      if (items[child]!.due >= last.due) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }

  clear(): void {
    this.#items = [];
  }
}
