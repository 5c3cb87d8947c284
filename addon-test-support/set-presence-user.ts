import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';
import type { FakeUser } from './-private/fake-server';

/**
 * Signs the app under test in as `user`, or out (`null`, an anonymous visitor), on the fake server and in
 * the `presence` service.
 */
export async function setPresenceUser(user: FakeUser | null): Promise<void> {
  const { owner, server } = presenceTestState('setPresenceUser');
  server.currentUser = user;
  owner
    .lookup('service:presence')
    .setCurrentUser(user ? { id: user.id } : null);
  await settled();
}
