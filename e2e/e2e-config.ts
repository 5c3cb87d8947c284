/**
 * The channels of the end-to-end suite: the shipped demo channels (server/config/demo.js), unchanged in who
 * may see and enter what, with a short timeout so that a client whose network was cut disappears within
 * seconds. Loaded by the real CLI: `ember-presence-server --demo --config e2e/e2e-config.ts`.
 */
import demoConfig from '../server/config/demo.js';
import type { PresenceServer } from '../server/src/index.js';

/**
 * Channel timeout in seconds. The e2e build of the demo heart-beats every second
 * (`EMBER_PRESENCE_HEARTBEAT_MS`), so 4 s tolerates three lost beats on a busy machine.
 */
export const E2E_CHANNEL_TIMEOUT_S = 4;

export default function e2eConfig(
  presence: Pick<PresenceServer, 'registerPrefix'>,
): void | Promise<void> {
  return demoConfig({
    registerPrefix: (prefix, callback) =>
      presence.registerPrefix(prefix, (name) => {
        const config = callback(name);
        return config && { ...config, timeout: E2E_CHANNEL_TIMEOUT_S };
      }),
  });
}
