import { Lru } from '../core/lru.js';
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
 * An {@link Lru} weighted by list length: the lists of the most recent reads, up to `maxUsers` users, are
 * kept, at most twice that in all; a list longer than `maxUsers` is not kept. The lists and their users
 * are frozen: callers share them.
 */
export class StateCache {
  readonly #maxUsers: number;
  readonly #entries: Lru<string, CachedUsers> | null;

  /** `maxUsers` 0 keeps nothing. */
  constructor(maxUsers: number) {
    this.#maxUsers = maxUsers;
    this.#entries =
      maxUsers > 0
        ? new Lru(maxUsers, (entry) => Math.max(1, entry.users.length))
        : null;
  }

  /** The version held for `channel`, or `''` (which no stored version equals). */
  versionOf(channel: string): string {
    return this.#entries?.get(channel)?.version ?? '';
  }

  /** The list held for `channel` when it is at `version`. */
  get(channel: string, version: string): readonly PresenceUser[] | undefined {
    const entry = this.#entries?.get(channel);
    return entry?.version === version ? entry.users : undefined;
  }

  /** Keeps `users` (frozen here) as `channel`'s list at `version`, and returns it. */
  set(
    channel: string,
    version: string,
    users: PresenceUser[],
  ): readonly PresenceUser[] {
    for (const user of users) Object.freeze(user);
    const frozen = Object.freeze(users);
    if (users.length > this.#maxUsers) this.#entries?.delete(channel);
    else this.#entries?.set(channel, { version, users: frozen });
    return frozen;
  }
}
