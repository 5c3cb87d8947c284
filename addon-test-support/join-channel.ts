import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';
import { toCurrentUser, type FakeUser } from './-private/fake-server';

/** Options of `joinChannel` / `leaveChannel`. */
export interface OtherClientOptions {
  /** The tab (client id) acting; default one tab per user, so joining twice is a heartbeat. */
  clientId?: string;
}

/**
 * Another user enters `name` on the fake server, as if from their own browser tab, and the app has
 * received the change once this resolves. Rejects when the channel does not exist or the user may not
 * enter it.
 *
 * @example await joinChannel('/topic/1/reply', { id: 2, username: 'ann', name: 'Ann' });
 */
export async function joinChannel(
  name: string,
  user: FakeUser,
  options: OtherClientOptions = {},
): Promise<void> {
  const { server } = presenceTestState('joinChannel');
  const current = toCurrentUser(user);
  await server.core.present(
    current,
    name,
    options.clientId ?? defaultClientId(current.id),
  );
  await settled();
}

/** The tab a test user acts from when the test does not name one. */
export function defaultClientId(userId: number): string {
  return `fake-user-${userId}`;
}
