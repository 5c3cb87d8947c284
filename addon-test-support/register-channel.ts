import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';
import type { ChannelConfigInput } from 'ember-presence/test-support/-private/core';

/**
 * Makes a channel exist on the fake server with this config (docs/protocol.md §1 config fields: `public`,
 * `allowedUserIds`, `allowedGroupIds`, `countOnly`, `timeout`). Without a config the channel is public and
 * every signed-in user of the test may enter it. Calling it again changes the config from the next request
 * on (e.g. to revoke access).
 *
 * @example registerChannel('/stats/visitors', { public: true, countOnly: true });
 */
export async function registerChannel(
  name: string,
  config?: ChannelConfigInput,
): Promise<void> {
  presenceTestState('registerChannel').server.registerChannel(name, config);
  await settled();
}

/** Removes a channel registered with `registerChannel`: it then answers as if it never existed. */
export async function unregisterChannel(name: string): Promise<void> {
  presenceTestState('unregisterChannel').server.unregisterChannel(name);
  await settled();
}
