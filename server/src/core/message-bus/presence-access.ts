import { canView } from '../access.js';
import type { ChannelConfig } from '../types.js';
import type { BusRequester } from './audience.js';
import { isPresenceBusChannel, PRESENCE_BUS_PREFIX } from './wire.js';

/**
 * A `canFollow` hook for {@link MessageBus} that applies the presence access rules to presence bus
 * channels: `/presence/<prefix>/<rest>` may be followed only by requesters who may view `/<prefix>/<rest>`
 * (docs/protocol.md §1). A forbidden channel then looks exactly like an unknown one on the bus too (last id 0,
 * nothing delivered), instead of revealing its message ids through `/__status` entries. Other channels are
 * left to per-message audiences.
 *
 * @example
 * const bus = new MessageBus({ store, canFollow: presenceChannelAccess(core) });
 */
export function presenceChannelAccess(core: {
  getConfig(name: string): Promise<ChannelConfig | null>;
}): (channel: string, requester: BusRequester) => Promise<boolean> {
  return async (channel, requester) => {
    if (!isPresenceBusChannel(channel)) return true;
    const config = await core.getConfig(
      channel.slice(PRESENCE_BUS_PREFIX.length),
    );
    return config !== null && canView(config, requester.user);
  };
}
