/**
 * The `--config` module the benches hand to the real CLI (`ember-presence-server --config
 * bench/lib/cli-config.ts`): every `/bench/…` channel is public (`/bench/count-…` ones count-only), as in
 * the forked bench servers (`server-child.ts`).
 */
import type { PresenceServer } from '../../server/src/index.js';

export default function benchConfig(
  presence: Pick<PresenceServer, 'registerPrefix'>,
): void {
  presence.registerPrefix('bench', (name) => ({
    public: true,
    countOnly: name.startsWith('/bench/count-'),
  }));
}
