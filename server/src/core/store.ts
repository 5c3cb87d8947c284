import type {
  Audience,
  BusMessage,
  ChannelConfig,
  ChannelState,
  PresenceUser,
} from './types.js';

/**
 * How a presence change is published, resolved from the channel config by the core and handed to the
 * store with every state-changing call. The store keeps the latest one per channel so that the sweep
 * (which has no config at hand) publishes with the same rules.
 */
export interface PublishRules {
  /** Publish `count_delta` instead of identities. */
  countOnly: boolean;
  /** Who receives the change messages; `null` → nobody may view: state changes, nothing is published. */
  audience: Audience | null;
  /**
   * The channel's `maxUsersShown` (absent or `null`: everyone is listed; ignored when `countOnly`). Only
   * `present` acts on it: the store keeps the shown set it built for the limit it last saw, and a
   * present with another limit rebuilds it (publishing `{"resync":true}` when users were present).
   * `leave` and `sweep` use the stored limit. docs/protocol.md §5.2.
   */
  maxUsersShown?: number | null;
}

/** The outcome of one `present` / `leave`. */
export interface PresenceResult {
  /** The user's membership changed (first client entered / last client left). */
  changed: boolean;
  /** The change message that was published, if any. */
  message: BusMessage | null;
  /**
   * Only on a `present` refused because the channel already holds `maxUsers` distinct users (and this
   * user is not one of them); nothing changed.
   */
  full?: true;
}

/** The outcome of one sweep pass. */
export interface SweepResult {
  /** Clients removed because their expiry passed. */
  expiredClients: number;
  /** One message per channel that lost users (only for channels with an audience). */
  messages: BusMessage[];
  /**
   * How late the sweep removed the client that waited longest: `now` minus its expiry, in ms (`0` when
   * nothing expired). The figure behind the `sweep lag` metric.
   */
  lagMs: number;
}

/**
 * Deployment-wide figures a store keeps as counters, updated with the state changes (never a scan), so
 * reading them costs one round trip whatever the size of the deployment.
 */
export interface StoreCounts {
  /** Presence channels with at least one present client. */
  channels: number;
  /** Present clients over all channels (a client in 3 channels counts 3 times). */
  clients: number;
}

/** A fixed-window counter hit. */
export interface RateLimitResult {
  allowed: boolean;
  /** Hits in the current window, this one included. */
  count: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
}

/** What {@link PresenceStore.admitUpdate} does for one update. */
export interface UpdateAdmission {
  /** Count the update in the user's fixed window of `windowMs`; `null`: no rate limit. */
  rate: { windowMs: number; limit: number } | null;
  /** The channel claims of {@link PresenceStore.claimChannels}; `null`: nothing to claim. */
  claims: {
    present: readonly string[];
    leaving: readonly string[];
    cap: number;
    untilMs: number;
  } | null;
}

/** The outcome of {@link PresenceStore.admitUpdate}. */
export interface UpdateAdmissionResult {
  /** The rate-limit hit (`null` without a limit). */
  rate: RateLimitResult | null;
  /** The present names refused by the cap. */
  refused: string[];
}

/** A cached prefix-callback result; `config: null` is a cached "not found". */
export interface CachedConfig {
  config: ChannelConfig | null;
}

/** What happened in a presence channel (see {@link PresenceEvent}). */
export type PresenceEventName =
  'member_added' | 'member_removed' | 'channel_occupied' | 'channel_vacated';

/**
 * A join/leave event: a user's first client entered a channel (`member_added`) or their last one left or
 * expired (`member_removed`), a channel got its first user (`channel_occupied`, just before that user's
 * `member_added`) or lost its last one (`channel_vacated`, just after the `member_removed`).
 */
export interface PresenceEvent {
  /**
   * Unique in the deployment and the same on every delivery of this event (`<seq>@<channel>`, seq
   * increasing per channel), so a receiver can drop duplicates.
   */
  id: string;
  name: PresenceEventName;
  /** The presence channel (`/site/online`). */
  channel: string;
  /** The user who entered or left (for occupied / vacated: the user whose change caused it). */
  userId: number;
  /** When the change happened, ms since the epoch (the server clock). */
  at: number;
}

/** Events of one channel read by {@link EventLog.readDue}, to hand to {@link EventLog.ack} once delivered. */
export interface PendingEvents {
  channel: string;
  /** The channel's score in the event index when it was read (for the compare-and-set in `ack`). */
  visited: number;
  /** Oldest first; may be empty (the channel was indexed but had nothing to deliver). */
  events: PresenceEvent[];
  /** The sequence number of the last event (what `ack` removes up to). */
  lastSeq: number;
}

/**
 * The durable side of join/leave events. While some process consumes events (hooks or webhooks), every
 * process records them in the same atomic step as the state change that causes them (the same Lua
 * script on Redis), in the channel's own outbox, and indexes the channel before the change; consumers
 * read the index shards they lease, deliver, then acknowledge. A crash anywhere delays events, never loses
 * them: unacknowledged events are read again by whoever holds the shard's lease next.
 */
export interface EventLog {
  /** Number of index shards (each leased separately). */
  readonly shards: number;
  /** Whether this process records events with its state changes now. */
  readonly recording: boolean;
  /**
   * Declares this process a consumer for `ttlMs` (call again before it lapses): it records events from now
   * on, and every process of the deployment does within one {@link refreshRecording} period.
   */
  announceConsumer(now: number, ttlMs: number): Promise<void>;
  /** Stops declaring this process a consumer (others keep recording until the announcement lapses). */
  withdrawConsumer(): Promise<void>;
  /** Re-reads whether any process consumes events, and records (or not) accordingly. */
  refreshRecording(now: number): Promise<boolean>;
  /** Takes or renews (or, with `release`, gives up) the lease on one shard; resolves whether it is held. */
  lease(
    shard: number,
    owner: string,
    leaseMs: number,
    now: number,
    release?: boolean,
  ): Promise<boolean>;
  /**
   * Channels of `shard` due for a visit at `now` (at most `maxChannels`, oldest first) and the oldest
   * `maxEvents` undelivered events of each.
   */
  readDue(
    shard: number,
    now: number,
    maxChannels: number,
    maxEvents: number,
  ): Promise<PendingEvents[]>;
  /**
   * Removes delivered events and re-schedules their channels: one that had events is visited again at
   * once; one found empty is checked once more after a grace period, then dropped from the index.
   */
  ack(
    shard: number,
    pending: readonly PendingEvents[],
    now: number,
  ): Promise<void>;
}

/** Called for every message published anywhere in the deployment (all server processes). */
export type BusListener = (message: BusMessage) => void;

/**
 * The storage contract behind the presence server and its message bus. Two implementations pass one
 * shared contract suite (`server/test/store-contract.ts`): `MemoryStore` (one process, no dependencies,
 * also runs in the browser for the test-support fake) and `RedisStore` (Lua scripts, many processes,
 * Redis Cluster).
 *
 * Rules every implementation keeps:
 * - Presence state and the bus backlog live together, so a state-changing call updates the state,
 *   appends the change message to the backlog of `/presence<channel>`, assigns its id (consecutive from 1
 *   per bus channel) and notifies `subscribe` listeners as ONE atomic step, and `state()` returns a
 *   `last_message_id` consistent with the users it returns.
 * - Time is always passed in (`now`, ms since epoch); stores never read a clock of their own, so tests
 *   inject one and never sleep.
 * - Channel names are already validated by the core; stores treat them as opaque strings.
 *
 * Lifecycle: construct, use, `close()`. After `close()` every call rejects.
 */
export interface PresenceStore {
  /**
   * Records `clientId` of `user` as present in `channel` until `now + timeoutMs`. Publishes
   * `{entering_users:[user]}` (or `{count_delta:1}`) when this is the user's first client; a repeated call is
   * a heartbeat that only extends the expiry.
   *
   * With `maxUsers`, a user who is not present yet is refused (`{changed: false, message: null, full:
   * true}`, nothing stored) when the channel already holds `maxUsers` distinct users; the check and the
   * change are one atomic step, so concurrent calls from many processes never exceed it. Users already
   * present (another tab, a heartbeat) are never refused. Clients past their expiry count until the sweep
   * removes them.
   */
  present(
    channel: string,
    user: PresenceUser,
    clientId: string,
    timeoutMs: number,
    rules: PublishRules,
    now: number,
    maxUsers?: number | null,
  ): Promise<PresenceResult>;

  /**
   * Removes `clientId` of `userId` from `channel`. Publishes `{leaving_user_ids:[id]}` (or
   * `{count_delta:-1}`) when it was the user's last client. Unknown clients are a silent no-op.
   * `rules: null` → use the rules stored by the last `present` on this channel.
   */
  leave(
    channel: string,
    userId: number,
    clientId: string,
    rules: PublishRules | null,
    now: number,
  ): Promise<PresenceResult>;

  /**
   * The channel's users (omitted when `countOnly`; sorted by id), count and `last_message_id`, read
   * atomically. Clients past their expiry that the sweep has not removed yet are still included: their
   * leave message is still to come, so the snapshot stays consistent with `last_message_id`.
   */
  state(
    channel: string,
    countOnly: boolean,
    now: number,
  ): Promise<ChannelState>;

  /**
   * Removes every client whose expiry is `<= now`, across all channels, without scanning channels that
   * have nothing due. Publishes at most one message per channel listing every user that left. Safe to run
   * concurrently from many processes: each expiry is announced exactly once.
   */
  sweep(now: number): Promise<SweepResult>;

  /** Appends a message to a bus channel's backlog and notifies listeners everywhere. */
  publish(
    channel: string,
    data: unknown,
    audience: Audience,
    now: number,
  ): Promise<BusMessage>;

  /**
   * Messages of `channel` with `message_id > afterId`, oldest first: at most the backlog cap, and at most
   * `limit` when given (the oldest `limit` of them), so that one read stays small whatever was asked.
   */
  backlog(
    channel: string,
    afterId: number,
    limit?: number,
  ): Promise<BusMessage[]>;

  /** The newest message id of each channel (0 when it has none). */
  lastIds(channels: readonly string[]): Promise<Record<string, number>>;

  /**
   * Follows messages published on `channels` by any process. Resolves once the subscription is live
   * (messages published afterwards are delivered); returns a function that stops following (calling it
   * twice is harmless). Implementations share one underlying subscription per process, ref-counted per
   * channel. MemoryStore calls listeners synchronously right after the state change; RedisStore calls
   * them when the message comes back through sharded pub/sub, so after the publishing call resolved.
   * Listeners must treat messages as read-only (one object is shared by all listeners of a message).
   */
  subscribe(
    channels: readonly string[],
    listener: BusListener,
  ): Promise<() => Promise<void>>;

  /** The cached config of a channel, or `undefined` when nothing (or an expired entry) is cached. */
  getConfig(channel: string, now: number): Promise<CachedConfig | undefined>;
  /** Caches a prefix-callback result (`null` = not found) for `ttlMs`. */
  setConfig(
    channel: string,
    config: ChannelConfig | null,
    ttlMs: number,
    now: number,
  ): Promise<void>;
  /** Drops a cached config, for every process. */
  deleteConfig(channel: string): Promise<void>;

  /**
   * Counts one hit on `key` in a fixed window of `windowMs` that opens at the first hit, shared by all
   * processes. `allowed` is `count <= limit`; without `limit` every hit is allowed and the caller compares
   * `count` itself.
   */
  hit(
    key: string,
    windowMs: number,
    now: number,
    limit?: number,
  ): Promise<RateLimitResult>;

  /**
   * The per-user cap on channels present at once, shared by every process: frees the slots of `leaving`,
   * renews those of `present` the user already holds, and takes new ones while fewer than `cap` are
   * held. Claims lapse at `untilMs` unless renewed. Returns the names of `present` refused.
   */
  claimChannels(
    userId: number,
    present: readonly string[],
    leaving: readonly string[],
    cap: number,
    untilMs: number,
    now: number,
  ): Promise<string[]>;

  /**
   * Optional: {@link hit} on the user's update rate window, then — only when the update is within
   * `rate.limit` — {@link claimChannels}, as one atomic step (RedisStore: one round trip instead of two).
   * Over the limit nothing is claimed and `refused` is empty. The window is the user's own, shared by
   * every process of the store. Stores without it get the two calls from the update handler.
   */
  admitUpdate?(
    userId: number,
    admission: UpdateAdmission,
    now: number,
  ): Promise<UpdateAdmissionResult>;

  /** Join/leave events for hooks and webhooks (see {@link EventLog}). */
  readonly events: EventLog;

  /** The deployment-wide counters (see {@link StoreCounts}); used by the metrics endpoint. */
  counts(): Promise<StoreCounts>;

  /** Resolves when the store is reachable; rejects otherwise (used by `/healthz`). */
  ping(): Promise<void>;

  /** Releases connections and timers. */
  close(): Promise<void>;
}
