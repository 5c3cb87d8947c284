import type { CurrentUser } from '../../core/types.js';

/**
 * The people of the demo (`--demo`, and `npm start` in this repository). Group 1 is "members"; Dee is in
 * no group, so she is the outsider who sees only public channels. Avatars are drawn locally by the demo
 * avatar route, so the demo works offline.
 */
export const DEMO_USERS: readonly CurrentUser[] = Object.freeze([
  demoUser(1, 'ann', 'Ann Archer', [1]),
  demoUser(2, 'bob', 'Bob Baker', [1]),
  demoUser(3, 'cyd', 'Cyd Carter', [1]),
  demoUser(4, 'dee', 'Dee Drake', []),
]);

/** The demo's only group. */
export const DEMO_MEMBERS_GROUP_ID = 1;

function demoUser(
  id: number,
  username: string,
  name: string,
  groupIds: number[],
): CurrentUser {
  return Object.freeze({
    id,
    username,
    name,
    avatar_template: `/presence/demo-avatar/${username}/{size}.svg`,
    groupIds: Object.freeze(groupIds),
  });
}
