import type { PresenceUser } from '../core/types.js';

/** One channel's users list as of a state version (presence-state.lua). */
interface CachedUsers {
  version: string;
  users: readonly PresenceUser[];
}

/**
 * The users lists of recent state reads, each kept with the channel's state version, so that a read of
 * an unchanged channel transfers and parses nothing (presence-state.lua leaves the users out when the
 * caller's version is current). Every process validates its copy against Redis on every read, so many
 * processes sharing one Redis never serve a stale list.
 *
 * Bounded by the total number of users held (least recently used channels go first); a list longer than
 * the whole budget is not kept. The lists and their users are frozen: callers share them.
 */
export class StateCache {
  readonly #maxUsers: number;
  /** Least recently used first. */
  readonly #entries = new Map<string, CachedUsers>();
  #users = 0;

  constructor(maxUsers: number) {
    this.#maxUsers = maxUsers;
  }

  /** The version held for `channel`, or `''` (which no stored version equals). */
  versionOf(channel: string): string {
    return this.#entries.get(channel)?.version ?? '';
  }

  /** The list held for `channel` when it is at `version`; marks it recently used. */
  get(channel: string, version: string): readonly PresenceUser[] | undefined {
    const entry = this.#entries.get(channel);
    if (entry === undefined || entry.version !== version) return undefined;
    this.#entries.delete(channel);
    this.#entries.set(channel, entry);
    return entry.users;
  }

  /** Keeps `users` (frozen here) as `channel`'s list at `version`, and returns it. */
  set(
    channel: string,
    version: string,
    users: PresenceUser[],
  ): readonly PresenceUser[] {
    for (const user of users) Object.freeze(user);
    const frozen = Object.freeze(users);
    this.delete(channel);
    if (users.length > this.#maxUsers) return frozen;
    this.#entries.set(channel, { version, users: frozen });
    this.#users += users.length;
    for (const [name, entry] of this.#entries) {
      if (this.#users <= this.#maxUsers) break;
      this.#entries.delete(name);
      this.#users -= entry.users.length;
    }
    return frozen;
  }

  delete(channel: string): void {
    const entry = this.#entries.get(channel);
    if (entry === undefined) return;
    this.#entries.delete(channel);
    this.#users -= entry.users.length;
  }

  /** Number of users held, over every channel. */
  get size(): number {
    return this.#users;
  }
}
