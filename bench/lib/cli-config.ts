/**
 * The `--config` module the benches hand to the real CLI (`ember-presence-server --config
 * bench/lib/cli-config.ts`): every `/bench/…` channel is {@link benchChannel}, as in the forked bench
 * servers (`server-child.ts`).
 */
import type {
  ChannelConfigInput,
  PresenceServer,
} from '../../server/src/index.js';

/** How many users `/bench/shown-…` channels list (`maxUsersShown`). */
export const BENCH_USERS_SHOWN = 50;

/**
 * Every `/bench/…` channel is public; `/bench/count-…` ones are count-only, `/bench/shown-…` ones list
 * {@link BENCH_USERS_SHOWN} users.
 */
export function benchChannel(name: string): ChannelConfigInput {
  return {
    public: true,
    countOnly: name.startsWith('/bench/count-'),
    ...(name.startsWith('/bench/shown-')
      ? { maxUsersShown: BENCH_USERS_SHOWN }
      : {}),
  };
}

export default function benchConfig(
  presence: Pick<PresenceServer, 'registerPrefix'>,
): void {
  presence.registerPrefix('bench', benchChannel);
}
