import { presenceTestState } from './-private/context';
import type { PresenceUser } from 'ember-presence/test-support/-private/core';

/**
 * Who the fake server holds as present in `name` (every user, whatever the app may see), by id.
 *
 * @example assert.deepEqual((await presentUsers('/site/online')).map((u) => u.username), ['me', 'ann']);
 */
export function presentUsers(name: string): Promise<PresenceUser[]> {
  return presenceTestState('presentUsers').server.presentUsers(name);
}
