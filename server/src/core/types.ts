/**
 * The data shapes shared by the server, its stores, the message bus and the in-browser fake server.
 *
 * Everything under `server/src/core/` runs in Node AND in the browser (the test-support fake server
 * bundles it), so it must not import Node built-ins or anything outside `core/`.
 */

/** A user as it appears in presence state and change messages: exactly these four fields. */
export interface PresenceUser {
  id: number;
  username: string;
  name: string | null;
  avatar_template: string;
}

/** The identity behind a request, as returned by the host's `currentUser(req)` hook. */
export interface CurrentUser extends PresenceUser {
  /** Groups the user belongs to; used by `allowedGroupIds`. */
  groupIds: readonly number[];
}

/** What a prefix callback returns for a channel that exists. Every field is optional. */
export interface ChannelConfigInput {
  /** Anyone, anonymous visitors included, may view. Default false. */
  public?: boolean;
  /** These users may view and enter. */
  allowedUserIds?: readonly number[] | null;
  /** Members of these groups may view and enter. */
  allowedGroupIds?: readonly number[] | null;
  /** Identities never leave the server: state has only a count, messages only a count delta. */
  countOnly?: boolean;
  /** Seconds without a "present" before a client is removed. Default 60. */
  timeout?: number;
  /**
   * At most this many distinct users present at once (a positive integer). A new user's enter beyond it is
   * refused as "full"; users already present, their heartbeats and their other tabs never are. Default: no
   * limit.
   */
  maxUsers?: number | null;
  /**
   * State and change messages list at most this many users (a positive integer): the ones who entered
   * earliest. `count` stays the true number of users; users beyond the first ones only move the count
   * (`count_delta` messages), and when a listed user leaves, the earliest unlisted one is listed in their
   * place. Keeps the state of a channel with 100,000 users small. Ignored on `countOnly` channels.
   * Default: everyone is listed.
   */
  maxUsersShown?: number | null;
}

/** A normalised channel config (defaults applied, validated). */
export interface ChannelConfig {
  public: boolean;
  allowedUserIds: readonly number[] | null;
  allowedGroupIds: readonly number[] | null;
  countOnly: boolean;
  /** Seconds. */
  timeout: number;
  /** At most this many distinct users present at once; absent when there is no limit. */
  maxUsers?: number;
  /** State and messages list at most this many users; absent when everyone is listed (or `countOnly`). */
  maxUsersShown?: number;
}

/**
 * Who receives a message-bus message. A requester receives it when
 * (no `clientIds` or its client id is listed) AND (no user/group lists, or its user id is in `userIds`,
 * or one of its groups is in `groupIds`). Empty lists are the same as absent.
 */
export interface Audience {
  userIds?: readonly number[] | null;
  groupIds?: readonly number[] | null;
  clientIds?: readonly string[] | null;
}

/** A message in a bus channel's backlog, in MessageBus wire shape plus its audience. */
export interface BusMessage {
  global_id: number;
  message_id: number;
  channel: string;
  data: unknown;
  user_ids?: number[];
  group_ids?: number[];
  client_ids?: string[];
}

/** Presence change payloads (docs/protocol.md §5). */
export type PresenceChange =
  | { entering_users: PresenceUser[] }
  | { leaving_user_ids: number[] }
  | { count_delta: number };

/** `state()` of a normal channel. */
export interface FullChannelState {
  users: PresenceUser[];
  count: number;
  last_message_id: number | null;
}

/** `state()` of a count-only channel. */
export interface CountOnlyChannelState {
  count: number;
  last_message_id: number | null;
}

export type ChannelState = FullChannelState | CountOnlyChannelState;

/** A clock in milliseconds since the epoch. Injected everywhere so tests never sleep. */
export type Clock = () => number;
