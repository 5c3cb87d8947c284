import type { Redis } from 'ioredis';
import type { RedisKeys } from '../src/store/keys.js';

/**
 * The invariants every presence channel's keys must keep, whatever crashed or was reset: the users hash
 * counts exactly the clients of each user in the clients set; backlog ids are consecutive from the
 * backlog's base + 1 and end at the meta's last id; and a complete backlog, replayed from nothing, gives
 * exactly the users stored. Returns one line per violation and how many channels were checked.
 */
export async function redisStateViolations(
  redis: Redis,
  keys: RedisKeys,
): Promise<{ channels: number; violations: string[] }> {
  const violations: string[] = [];
  const channels = new Set<string>();
  const stem = keys.pattern().replace(/\*$/, '');
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(
      cursor,
      'MATCH',
      `${stem}{/presence/*`,
      'COUNT',
      1000,
    );
    cursor = next;
    for (const key of batch) {
      const open = key.indexOf('{/presence');
      channels.add(
        key.slice(open + '{/presence'.length, key.indexOf('}', open)),
      );
    }
  } while (cursor !== '0');

  for (const channel of channels) {
    const k = keys.presence(channel);
    const users = await redis.hgetall(k.users);
    const members = await redis.zrange(k.clients, '0', '-1');
    const perUser = new Map<string, number>();
    for (const member of members) {
      const userId = member.slice(0, member.indexOf(':'));
      perUser.set(userId, (perUser.get(userId) ?? 0) + 1);
    }
    const counted = Object.entries(users).map(
      ([id, n]) => [id, Number(n)] as const,
    );
    if (
      counted.length !== perUser.size ||
      counted.some(([id, n]) => perUser.get(id) !== n)
    )
      violations.push(
        `${channel}: users hash ${JSON.stringify(users)} does not count the clients ${JSON.stringify(members)}`,
      );

    const log = await redis.zrange(k.bus.log, '0', '-1');
    const meta = await redis.hgetall(k.bus.meta);
    if (log.length === 0) continue;
    const messages = log.map(
      (json) =>
        JSON.parse(json) as {
          message_id: number;
          data: {
            entering_users?: { id: number }[];
            leaving_user_ids?: number[];
          };
        },
    );
    for (let i = 1; i < messages.length; i++) {
      if (messages[i]!.message_id !== messages[i - 1]!.message_id + 1)
        violations.push(
          `${channel}: backlog ids ${messages[i - 1]!.message_id} then ${messages[i]!.message_id}`,
        );
    }
    const lastId = messages.at(-1)!.message_id;
    if (Number(meta['id']) !== lastId)
      violations.push(
        `${channel}: meta id ${meta['id']}, last backlog id ${lastId}`,
      );
    const base = Number(meta['b']);
    if (meta['b'] !== undefined && messages[0]!.message_id === base + 1) {
      const replayed = new Set<number>();
      for (const { data } of messages) {
        for (const user of data.entering_users ?? []) replayed.add(user.id);
        for (const id of data.leaving_user_ids ?? []) replayed.delete(id);
      }
      const stored = new Set(Object.keys(users).map(Number));
      const same =
        replayed.size === stored.size &&
        [...replayed].every((id) => stored.has(id));
      if (!same)
        violations.push(
          `${channel}: the backlog replays to [${[...replayed].join(',')}], the store holds [${[...stored].join(',')}]`,
        );
    }
  }
  return { channels: channels.size, violations };
}
