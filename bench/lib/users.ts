import type { Request } from 'express';

import type { CurrentUser } from '../../server/src/core/types.js';

/** The user a bench request claims, from the `x-bench-user` header (a bench-only identity hook). */
export function benchUser(req: Request): CurrentUser | null {
  const header = req.get('x-bench-user');
  if (!header) return null;
  const id = Number(header);
  if (!Number.isSafeInteger(id) || id <= 0) return null;
  return benchUserById(id);
}

/** A realistic user record: the size of the profile matters for state and memory figures. */
export function benchUserById(id: number): CurrentUser {
  return {
    id,
    username: `user${id}`,
    name: `User ${id}`,
    avatar_template: `/user_avatar/localhost/user${id}/{size}/1_2.png`,
    groupIds: [],
  };
}
