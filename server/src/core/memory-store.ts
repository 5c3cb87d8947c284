/* eslint-disable @typescript-eslint/require-await --
   The methods are async without awaiting on purpose: every failure (a bad argument, a closed store) must
   reject the returned promise as the contract says, never throw synchronously at the call site. */
import {
  GLOBAL_IDS_PER_MS,
  buildMessage,
  firstMessageIdBase,
  presenceBusChannel,
} from './bus-messages.js';
import { samePresenceUser } from './access.js';
import { DueHeap } from './due-heap.js';
import { RESYNC, ShownUsers, usersChange } from './shown-users.js';
import { ListenerRegistry } from './listener-registry.js';
import { retention, type RetentionOptions } from './retention.js';
import { checkStoreCall, storeArgs } from './store-args.js';
import type {
  BusListener,
  CachedConfig,
  PresenceResult,
  PresenceStore,
  PublishRules,
  RateLimitResult,
  StoreCounts,
  SweepResult,
} from './store.js';
import { MemoryEventLog } from './events/memory-event-log.js';
import type {
  Audience,
  BusMessage,
  ChannelConfig,
  ChannelState,
  PresenceUser,
} from './types.js';

/** Options of {@link MemoryStore}. Every field is optional. */
export interface MemoryStoreOptions extends RetentionOptions {
  /**
   * Receives what a `subscribe` listener throws, so one faulty listener can neither break the
   * operation that published nor starve the other listeners. Default: `console.error`.
   */
  onListenerError?: (error: unknown, message: BusMessage) => void;
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
  /**
   * The users list `state()` answers (sorted by id, frozen, shared by every read), built on the first
   * read after a change of `members` (a user entering or leaving, a profile edited); `null` until then.
   */
  users: readonly PresenceUser[] | null;
  /** With `maxUsersShown`: who is listed and who waits, built for its `limit`; `null` lists everyone. */
  shown: ShownUsers | null;
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

  /** Join/leave events for hooks and webhooks. */
  readonly events = new MemoryEventLog();
  #clientCount = 0;
  #channelCount = 0;
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
    maxUsers?: number | null,
  ): Promise<PresenceResult> {
    this.#assertOpen();
    const {
      user: member,
      rules: checkedRules,
      maxUsers: limit,
    } = checkStoreCall.present(
      channel,
      user,
      clientId,
      timeoutMs,
      rules,
      now,
      maxUsers,
    );
    this.#advance(now);

    const stored = this.#channelData(channel, now);
    // Full: a new user is refused before anything is touched; present members always get through.
    if (
      limit !== null &&
      stored &&
      !stored.members.has(member.id) &&
      stored.members.size >= limit
    )
      return { changed: false, message: null, full: true };
    const data = stored ?? this.#newChannel(channel);
    data.rules = checkedRules;
    // The limit changed (set, changed or removed): the listed set is built again for it, and the users
    // present so far are added on their next present (the Redis store cannot list them before: it has
    // no profile of theirs in the channel's slot). Viewers must refetch.
    const shownLimit = checkedRules.maxUsersShown ?? null;
    const resync =
      (data.shown?.limit ?? null) !== shownLimit && data.members.size > 0;
    if ((data.shown?.limit ?? null) !== shownLimit) {
      data.shown = shownLimit === null ? null : new ShownUsers(shownLimit);
      data.users = null;
    }
    this.#touchChannel(channel, data, now);
    this.#touchBacklog(presenceBusChannel(channel), now);
    this.#emptyBacklogs.delete(presenceBusChannel(channel));

    const key = `${member.id}:${clientId}`;
    const expiresAt = now + timeoutMs;
    const existing = data.clients.get(key);
    if (!existing) this.#countClients(data, 1);
    let changed = false;
    if (existing) {
      // A heartbeat: only the expiry moves (and the profile, which may have been edited).
      existing.expiresAt = expiresAt;
      const current = data.members.get(member.id);
      if (current) updateProfile(data, current, member);
    } else {
      data.clients.set(key, { userId: member.id, expiresAt });
      const current = data.members.get(member.id);
      if (current) {
        current.clients += 1;
        updateProfile(data, current, member);
      } else {
        data.members.set(member.id, { user: member, clients: 1 });
        data.users = null;
        changed = true;
        if (this.events.recording)
          this.events.record(
            channel,
            data.members.size === 1
              ? [
                  ['channel_occupied', member.id],
                  ['member_added', member.id],
                ]
              : [['member_added', member.id]],
            now,
          );
      }
    }
    this.#schedule(channel, data, expiresAt);

    if (resync) this.#publishChange(channel, checkedRules, RESYNC, now);
    let change: unknown = null;
    if (checkedRules.countOnly) {
      if (changed) change = { count_delta: 1 };
    } else if (data.shown && !data.shown.has(member.id)) {
      // A new user, or one present since before the limit changed: they join the enter order now.
      const listed = data.shown.add(member.id);
      if (listed) data.users = null;
      change = usersChange(listed ? [member] : [], [], changed ? 1 : 0);
    } else if (changed) {
      change = usersChange([member], [], 1);
    }
    const message =
      change === null
        ? null
        : this.#publishChange(channel, checkedRules, change, now);
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
    this.#countClients(data, -1);

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
    data.users = null;
    if (this.events.recording)
      this.events.record(
        channel,
        data.members.size === 0
          ? [
              ['member_removed', userId],
              ['channel_vacated', userId],
            ]
          : [['member_removed', userId]],
        now,
      );
    const effective = data.rules;
    const message = effective
      ? this.#publishChange(
          channel,
          effective,
          effective.countOnly
            ? { count_delta: -1 }
            : this.#leavingChange(data, [userId]),
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
    if (!data) return { users: [], count, last_message_id };
    data.users ??= Object.freeze(
      (data.shown
        ? [...data.shown.listed()].map((id) => data.members.get(id)!)
        : [...data.members.values()]
      )
        .map((m) => Object.freeze({ ...m.user }))
        .sort((a, b) => a.id - b.id),
    );
    // A copy of the shared list (its frozen users are shared): callers may sort or extend their array.
    return { users: data.users.slice(), count, last_message_id };
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
    let lagMs = 0;
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
        this.#countClients(data, -1);
        lagMs = Math.max(lagMs, now - client.expiresAt);
        expiredHere += 1;
        const member = data.members.get(client.userId);
        if (member && member.clients > 1) {
          member.clients -= 1;
        } else {
          data.members.delete(client.userId);
          data.users = null;
          leftUserIds.push(client.userId);
        }
      }
      let next = Infinity;
      for (const client of data.clients.values())
        next = Math.min(next, client.expiresAt);
      if (next !== Infinity) this.#schedule(entry.channel, data, next);

      expiredClients += expiredHere;
      if (expiredHere === 0) continue;
      if (this.events.recording && leftUserIds.length > 0)
        this.events.record(
          entry.channel,
          [
            ...leftUserIds.map((id) => ['member_removed', id] as const),
            ...(data.members.size === 0
              ? [['channel_vacated', leftUserIds.at(-1)!] as const]
              : []),
          ],
          now,
        );
      this.#touchChannel(entry.channel, data, now);
      this.#touchBacklog(presenceBusChannel(entry.channel), now);
      if (leftUserIds.length === 0 || !data.rules) {
        if (data.clients.size === 0) this.#emptied(entry.channel, now);
        continue;
      }
      const change = data.rules.countOnly
        ? { count_delta: -leftUserIds.length }
        : this.#leavingChange(data, leftUserIds);
      const message = this.#publishChange(
        entry.channel,
        data.rules,
        change,
        now,
      );
      if (message) messages.push(message);
      if (data.clients.size === 0) this.#emptied(entry.channel, now);
    }
    return { expiredClients, messages, lagMs };
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

  async counts(): Promise<StoreCounts> {
    this.#assertOpen();
    return { channels: this.#channelCount, clients: this.#clientCount };
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
    this.events.observe(now);
    this.#collectGarbage(now);
  }

  /**
   * Moves the counters of `counts()` by one client of `data`: call it with `1` just BEFORE a client is
   * added, with `-1` just AFTER one is removed (the channel counts while it has clients).
   */
  #countClients(data: ChannelData, delta: 1 | -1): void {
    this.#clientCount += delta;
    if (delta > 0 && data.clients.size === 0) this.#channelCount += 1;
    if (delta < 0 && data.clients.size === 0) this.#channelCount -= 1;
  }

  /** A channel's data is dropped with clients still in it (its TTL passed unswept): uncount them. */
  #uncount(data: ChannelData): void {
    if (data.clients.size === 0) return;
    this.#clientCount -= data.clients.size;
    this.#channelCount -= 1;
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
    dropExpired(this.#channels, (data) => {
      const expired = data.lastActivity + this.#channelTtlMs <= now;
      if (expired) this.#uncount(data);
      return expired;
    });
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
      this.#uncount(data);
      this.#channels.delete(channel);
      return undefined;
    }
    return data;
  }

  #newChannel(channel: string): ChannelData {
    const data: ChannelData = {
      clients: new Map(),
      members: new Map(),
      users: null,
      shown: null,
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

  /**
   * The message data for users who left a users channel (their members already removed): with
   * `maxUsersShown`, the listed ones leave the list and waiting users are listed in their places.
   */
  #leavingChange(data: ChannelData, userIds: number[]): unknown {
    if (!data.shown) return usersChange([], userIds, -userIds.length);
    const { left, promoted } = data.shown.remove(userIds);
    if (left.length > 0) data.users = null;
    return usersChange(
      promoted.map((id) => data.members.get(id)!.user),
      left,
      -userIds.length,
    );
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

/** A present call's profile replaces the stored one; a changed profile invalidates the users list. */
function updateProfile(
  data: ChannelData,
  current: Member,
  user: PresenceUser,
): void {
  if (!samePresenceUser(current.user, user)) data.users = null;
  current.user = user;
}
