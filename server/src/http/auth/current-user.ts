import type { Request } from 'express';
import type { CurrentUser } from '../../core/types.js';

/**
 * The authentication hook: who is making this request? Host code supplies it; the presence endpoints
 * AND the message bus call the same one, so a poller sees exactly what its user may see.
 *
 * Return `null` for anonymous visitors. It may be async. It must never trust an identity that the client
 * merely asserts (a `user_id` parameter, an unsigned cookie): derive it from a session, a verified token,
 * or a signed cookie.
 *
 * @example
 * createPresenceServer({
 *   currentUser: async (req) => {
 *     const session = await sessions.find(req.cookies.sid);
 *     return session && { id: session.userId, username: session.username, name: session.name,
 *       avatar_template: session.avatar, groupIds: session.groupIds };
 *   },
 * });
 */
export type CurrentUserHook = (
  req: Request,
) => CurrentUser | null | Promise<CurrentUser | null>;

/** Nobody is logged in: the safe default when no hook is configured (anonymous visitors see public channels). */
export const anonymousOnly: CurrentUserHook = () => null;

/**
 * Tries several hooks in order; the first non-null user wins (e.g. a JWT, then the demo login).
 *
 * @example const currentUser = firstUser(jwtCurrentUser({ secret }), demo.currentUser);
 */
export function firstUser(...hooks: CurrentUserHook[]): CurrentUserHook {
  return async (req) => {
    for (const hook of hooks) {
      const user = await hook(req);
      if (user) return user;
    }
    return null;
  };
}

/**
 * Checks what a host hook returned, so a hook bug fails loudly with a message naming the fix instead of
 * corrupting presence state (a string id, a missing username).
 *
 * @throws Error describing the invalid field.
 */
export function assertCurrentUser(value: unknown): CurrentUser | null {
  if (value === null || value === undefined) return null;
  const problem = describeInvalidUser(value);
  if (problem)
    throw new Error(`currentUser(req) returned an invalid user: ${problem}`);
  const user = value as CurrentUser;
  return {
    id: user.id,
    username: user.username,
    name: user.name ?? null,
    avatar_template: user.avatar_template ?? '',
    groupIds: user.groupIds ?? [],
  };
}

/**
 * The most a user's profile fields may hold, in UTF-16 code units (JavaScript `length`). Every field is
 * broadcast in each enter message to everyone who sees the channel and stored once per channel, so one
 * user cannot make every message or state read heavy. Beyond them a hook's user is an error (the request
 * answers 500 and the log names the field) and a JWT is rejected (`invalid_token`, logged).
 */
export const USER_FIELD_LIMITS = Object.freeze({
  username: 60,
  name: 100,
  avatar_template: 500,
  /** Group ids per user. */
  groupIds: 1000,
});

/**
 * What is wrong with a user object as a hook or a token describes it, or `null` when it is a valid
 * {@link CurrentUser} (`name`, `avatar_template`, `groupIds` optional). One rule for every source.
 */
export function describeInvalidUser(value: unknown): string | null {
  if (typeof value !== 'object' || value === null)
    return 'expected an object or null';
  const user = value as Record<string, unknown>;
  if (!Number.isSafeInteger(user['id']) || (user['id'] as number) <= 0)
    return '`id` must be a positive integer';
  const username = user['username'];
  if (typeof username !== 'string' || username.trim() === '')
    return '`username` must be a non-empty string';
  if (username.length > USER_FIELD_LIMITS.username)
    return `\`username\` must be at most ${USER_FIELD_LIMITS.username} characters`;
  const name = user['name'];
  if (name !== undefined && name !== null) {
    if (typeof name !== 'string') return '`name` must be a string or null';
    if (name.length > USER_FIELD_LIMITS.name)
      return `\`name\` must be at most ${USER_FIELD_LIMITS.name} characters`;
  }
  const avatar = user['avatar_template'];
  if (avatar !== undefined) {
    if (typeof avatar !== 'string') return '`avatar_template` must be a string';
    if (avatar.length > USER_FIELD_LIMITS.avatar_template)
      return `\`avatar_template\` must be at most ${USER_FIELD_LIMITS.avatar_template} characters`;
  }
  const groups = user['groupIds'];
  if (
    groups !== undefined &&
    !(Array.isArray(groups) && groups.every((g) => Number.isSafeInteger(g)))
  ) {
    return '`groupIds` must be an array of integers';
  }
  if (Array.isArray(groups) && groups.length > USER_FIELD_LIMITS.groupIds)
    return `\`groupIds\` must hold at most ${USER_FIELD_LIMITS.groupIds} ids`;
  return null;
}

/** Reads one cookie from the `Cookie` header without depending on a cookie-parser middleware. */
export function readCookie(req: Request, name: string): string | undefined {
  const header = req.get('cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2)
      value = value.slice(1, -1);
    try {
      return decodeURIComponent(value);
    } catch {
      return value;
    }
  }
  return undefined;
}
