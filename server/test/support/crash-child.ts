// A server process's store under load, to be SIGKILLed at a random instant by server/test/crash.test.ts:
// each round is an update entering 50 new channels at once (50 present calls in flight), as the core does
// for `POST /presence/update` with 50 present_channels. Prints "ready" once the scripts are loaded.
import { RedisStore } from '../../src/store/redis-store.js';

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const keyPrefix = process.env['KEY_PREFIX'];
if (!keyPrefix) throw new Error('KEY_PREFIX is required');
const store = new RedisStore(url, { keyPrefix });
const rules = { countOnly: false, audience: {} };
const user = (id: number) => ({
  id,
  username: `u${id}`,
  name: null,
  avatar_template: '',
});

await store.present(
  '/crash/warm-up',
  user(1),
  'tab',
  60_000,
  rules,
  Date.now(),
);
process.stdout.write('ready\n');
for (let round = 0; round < 1_000; round++) {
  await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      store.present(
        `/crash/${process.pid}-${round}-${i}`,
        user(i + 1),
        'tab',
        60_000,
        rules,
        Date.now(),
      ),
    ),
  );
}
await store.close();
