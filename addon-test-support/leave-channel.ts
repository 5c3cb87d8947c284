import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';
import type { FakeUser } from './-private/fake-server';
import { defaultClientId, type OtherClientOptions } from './join-channel';

/**
 * Another user's tab leaves `name` on the fake server (a no-op when it was not there); the app has
 * received the change once this resolves.
 *
 * @example await leaveChannel('/topic/1/reply', { id: 2, username: 'ann' });
 */
export async function leaveChannel(
  name: string,
  user: Pick<FakeUser, 'id'>,
  options: OtherClientOptions = {},
): Promise<void> {
  const { server } = presenceTestState('leaveChannel');
  await server.core.leave(
    user.id,
    name,
    options.clientId ?? defaultClientId(user.id),
  );
  await settled();
}
