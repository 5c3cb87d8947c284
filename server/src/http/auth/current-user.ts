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

function describeInvalidUser(value: unknown): string | null {
  if (typeof value !== 'object') return 'expected an object or null';
  const user = value as Record<string, unknown>;
  if (!Number.isSafeInteger(user['id'])) return '`id` must be an integer';
  if (typeof user['username'] !== 'string' || user['username'] === '')
    return '`username` must be a non-empty string';
  if (
    user['name'] !== undefined &&
    user['name'] !== null &&
    typeof user['name'] !== 'string'
  ) {
    return '`name` must be a string or null';
  }
  if (
    user['avatar_template'] !== undefined &&
    typeof user['avatar_template'] !== 'string'
  ) {
    return '`avatar_template` must be a string';
  }
  const groups = user['groupIds'];
  if (
    groups !== undefined &&
    !(Array.isArray(groups) && groups.every((g) => Number.isSafeInteger(g)))
  ) {
    return '`groupIds` must be an array of integers';
  }
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
