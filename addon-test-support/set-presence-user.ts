import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';
import type { FakeUser } from './-private/fake-server';

/**
 * Signs the app under test in as `user`, or out (`null`, an anonymous visitor), on the fake server and in
 * the `presence` service — in the order an app must follow too: the service first, so that its sign-out
 * leave still reaches the server as the user who leaves (a leave sent anonymously is refused, and the
 * user would stay present until the channel timeout); then the server's idea of who is signed in.
 */
export async function setPresenceUser(user: FakeUser | null): Promise<void> {
  const { owner, server } = presenceTestState('setPresenceUser');
  const presence = owner.lookup('service:presence');
  if (user === null) {
    presence.setCurrentUser(null);
    await settled(); // the leave, answered while the fake still knows the user
    server.currentUser = null;
  } else {
    server.currentUser = user;
    presence.setCurrentUser({ id: user.id });
    await settled();
  }
}
