/**
 * Plain data shapes of the client core. Nothing here imports Ember, so the reducers that use them can be
 * unit-tested as pure functions.
 */

/** A user as the server sends it in channel state and change messages (docs/protocol.md §5): exactly these fields. */
export interface PresenceUser {
  readonly id: number;
  readonly username: string;
  readonly name: string | null;
  readonly avatar_template: string;
}

/**
 * What the client knows about one channel at one message id. Immutable: every change produces a new
 * object, so a single `@tracked` field holding it is enough for templates to update.
 *
 * Worked case: the snapshot `{"users":[ann],"count":1,"last_message_id":4}` becomes
 * `{ users: [ann], count: 1, lastMessageId: 4 }`; message 5 `{"entering_users":[bob]}` then gives
 * `{ users: [ann, bob], count: 2, lastMessageId: 5 }`.
 */
export interface ChannelData {
  /**
   * The shown users, in arrival order, one entry per id: every present user, or on a channel with
   * `maxUsersShown` the (at most) that many who entered first; `null` for a count-only channel.
   */
  readonly users: readonly PresenceUser[] | null;
  /**
   * Number of present users, shown or not: at least `users.length`, and equal to it on a channel without
   * `maxUsersShown`.
   */
  readonly count: number;
  /**
   * Id of the last change message folded into this data; 0 when the channel never had one (the server's
   * `last_message_id: null`), so the next expected message is always `lastMessageId + 1`.
   */
  readonly lastMessageId: number;
}
