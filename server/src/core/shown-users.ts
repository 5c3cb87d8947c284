import type { PresenceUser } from './types.js';

/**
 * The users a channel with `maxUsersShown` lists (docs/protocol.md §5.2): at most `limit` of them, the
 * ones who entered earliest. A user who enters while `limit` users are listed waits (counted, not listed);
 * when a listed user leaves, the earliest waiting user is listed in their place.
 *
 * Invariant: every listed user entered before every waiting one, so "listed" is exactly "among the first
 * `limit` by enter order" — the definition the Redis store's scripts implement with a ZSET ranked by enter
 * order (presence-present.lua). Both `Map`s keep insertion order, which is enter order.
 *
 * Users present before the limit was set (or changed) are in neither map until their next present adds
 * them (see `MemoryStore.present`); they are counted, not listed.
 *
 * @example
 * const shown = new ShownUsers(2);
 * shown.add(1); shown.add(2); // true, true: listed
 * shown.add(3);               // false: waits
 * shown.remove([1]);          // { left: [1], promoted: [3] }
 */
export class ShownUsers {
  readonly limit: number;
  readonly #listed = new Map<number, true>();
  readonly #waiting = new Map<number, true>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Whether `userId` is listed or waiting. */
  has(userId: number): boolean {
    return this.#listed.has(userId) || this.#waiting.has(userId);
  }

  /** The listed users' ids, in enter order. */
  listed(): IterableIterator<number> {
    return this.#listed.keys();
  }

  /** Adds a user after everyone already here; true when they are listed. */
  add(userId: number): boolean {
    if (this.#listed.size < this.limit) {
      this.#listed.set(userId, true);
      return true;
    }
    this.#waiting.set(userId, true);
    return false;
  }

  /**
   * Removes users who left: `left` are those of them who were listed (in the given order), `promoted`
   * the waiting users listed in their places (in enter order).
   */
  remove(userIds: readonly number[]): { left: number[]; promoted: number[] } {
    const left: number[] = [];
    for (const id of userIds) {
      if (this.#listed.delete(id)) left.push(id);
      else this.#waiting.delete(id);
    }
    const promoted: number[] = [];
    for (const id of this.#waiting.keys()) {
      if (this.#listed.size >= this.limit) break;
      this.#waiting.delete(id);
      this.#listed.set(id, true);
      promoted.push(id);
    }
    return { left, promoted };
  }
}

/**
 * The message data that tells viewers to fetch the state again: published when a channel's
 * `maxUsersShown` is set, changed or removed while users are present (docs/protocol.md §5.2).
 */
export const RESYNC = Object.freeze({ resync: true });

/** The data of a change message of a users channel (docs/protocol.md §5). */
export interface UsersChange {
  entering_users?: PresenceUser[];
  leaving_user_ids?: number[];
  count_delta?: number;
}

/**
 * A users channel's change message data: `entering_users`, `leaving_user_ids` and `count_delta`, in this
 * key order, each only when it says something. `count_delta` is there exactly when the count moves by
 * something other than entering − leaving (always so on an uncapped channel, so its messages keep the
 * one-key shapes every client knows). Returns `null` when nothing changed.
 *
 * @example
 * usersChange([ann], [], 1);   // { entering_users: [ann] }
 * usersChange([], [], 1);      // { count_delta: 1 }: a user who is not listed entered
 * usersChange([bob], [7], -1); // { entering_users: [bob], leaving_user_ids: [7], count_delta: -1 }
 */
export function usersChange(
  entering: readonly PresenceUser[],
  leaving: readonly number[],
  countDelta: number,
): UsersChange | null {
  const change: UsersChange = {};
  if (entering.length > 0) change.entering_users = [...entering];
  if (leaving.length > 0) change.leaving_user_ids = [...leaving];
  if (countDelta !== entering.length - leaving.length)
    change.count_delta = countDelta;
  return Object.keys(change).length > 0 ? change : null;
}
