import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';

/**
 * Delivers a change message of channel `name` to the app only; the fake server's state does not change.
 * With `messageId` exactly as given — a repeated, skipped or malformed message, which the app must answer
 * by resynchronising; without it, with the id after the channel's last one, so the app applies `data`
 * (e.g. `{ entering_users: [user] }`) as is. Real changes are `joinChannel`/`leaveChannel`.
 *
 * @example
 * await deliverMessage('/site/online', { unexpected: true }, { messageId: 999 }); // the app refetches
 */
export async function deliverMessage(
  name: string,
  data: unknown,
  options: { messageId?: number } = {},
): Promise<void> {
  await presenceTestState('deliverMessage').server.deliverMessage(
    name,
    data,
    options,
  );
  await settled();
}
