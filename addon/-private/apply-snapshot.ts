import type { ChannelData, PresenceUser } from './types';

/**
 * Turns a channel state received from the server (or embedded in a page payload) into `ChannelData`.
 * Returns `undefined` when the value does not have the wire shape, so the caller can treat it as a
 * failed fetch instead of rendering garbage.
 *
 * A users channel with `maxUsersShown` lists only the users it shows, and its `count` counts everyone
 * present, so `count` is kept when it is at least the number of (distinct) users listed; a state without
 * `count` counts the listed users, and one whose `count` is smaller than its list is refused.
 *
 * @example
 * applySnapshot({ count: 41, last_message_id: null }); // { users: null, count: 41, lastMessageId: 0 }
 * applySnapshot({ users: [ann], count: 41, last_message_id: 9 }); // { users: [ann], count: 41, lastMessageId: 9 }
 */
export function applySnapshot(raw: unknown): ChannelData | undefined {
  if (!isRecord(raw)) return undefined;
  const lastId = raw['last_message_id'];
  if (lastId !== null && !isNonNegativeInteger(lastId)) return undefined;
  const lastMessageId = lastId ?? 0;

  if ('users' in raw && raw['users'] !== undefined && raw['users'] !== null) {
    const users = toUsers(raw['users']);
    if (!users) return undefined;
    const unique = dedupeById(users);
    const count = raw['count'] === undefined ? unique.length : raw['count'];
    if (!isNonNegativeInteger(count) || count < unique.length) return undefined;
    return { users: unique, count, lastMessageId };
  }

  const count = raw['count'];
  if (!isNonNegativeInteger(count)) return undefined;
  return { users: null, count, lastMessageId };
}

/** Validates a list of wire users; `undefined` if any entry is malformed. */
export function toUsers(raw: unknown): PresenceUser[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const users: PresenceUser[] = [];
  for (const entry of raw as unknown[]) {
    const user = toUser(entry);
    if (!user) return undefined;
    users.push(user);
  }
  return users;
}

/**
 * Keeps one entry per user id, the newest data winning, in first-seen order. Keyed by id through a `Map`
 * (never by object identity: the same user arrives as a different object in every message).
 */
export function dedupeById(users: readonly PresenceUser[]): PresenceUser[] {
  const byId = new Map<number, PresenceUser>();
  for (const user of users) byId.set(user.id, user);
  return [...byId.values()];
}

function toUser(raw: unknown): PresenceUser | undefined {
  if (!isRecord(raw)) return undefined;
  const { id, username, name, avatar_template } = raw;
  if (typeof id !== 'number' || !Number.isFinite(id)) return undefined;
  if (typeof username !== 'string') return undefined;
  if (name !== null && name !== undefined && typeof name !== 'string')
    return undefined;
  if (typeof avatar_template !== 'string') return undefined;
  // Copy only the four contract fields, so nothing else the server might add ends up in templates.
  return { id, username, name: name ?? null, avatar_template };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
