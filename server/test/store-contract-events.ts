import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { EVENT_INDEX_GRACE_MS } from '../src/core/events/schedule.js';
import type {
  PendingEvents,
  PresenceStore,
  PublishRules,
} from '../src/core/store.js';
import type { PresenceUser } from '../src/core/types.js';

const T = 1_764_000_000_000;
const CHANNEL = '/site/online';
const PUBLIC: PublishRules = { countOnly: false, audience: {} };
const COUNT_ONLY: PublishRules = { countOnly: true, audience: {} };
const NOBODY: PublishRules = { countOnly: false, audience: null };

function user(id: number): PresenceUser {
  return { id, username: `user${id}`, name: `User ${id}`, avatar_template: '' };
}

/** Every due channel of every shard, as a consumer holding all leases reads them. */
async function readAll(
  store: PresenceStore,
  now: number,
): Promise<PendingEvents[][]> {
  return Promise.all(
    Array.from({ length: store.events.shards }, (_, shard) =>
      store.events.readDue(shard, now, 1000, 1000),
    ),
  );
}

/** Reads and acknowledges everything due; returns the events as `name:userId@channel`. */
async function drain(store: PresenceStore, now: number): Promise<string[]> {
  const shards = await readAll(store, now);
  await Promise.all(
    shards.map((pending, shard) => store.events.ack(shard, pending, now)),
  );
  return shards
    .flat()
    .flatMap((p) => p.events.map((e) => `${e.name}:${e.userId}@${e.channel}`));
}

/**
 * The join/leave event contract (issue 18), registered inside runStoreContract: `store()` and
 * `connect()` give the fixture's store and another process's.
 */
export function eventContract(
  store: () => PresenceStore,
  connect: () => Promise<PresenceStore>,
): void {
  describe('join/leave events', () => {
    it('records nothing and indexes nothing while nobody consumes events', async () => {
      const s = store();
      assert.equal(s.events.recording, false);
      await s.present(CHANNEL, user(1), 'a', 1000, PUBLIC, T);
      await s.leave(CHANNEL, 1, 'a', PUBLIC, T + 1);
      assert.deepEqual((await readAll(s, T + 10)).flat(), []);
    });

    it('records each membership change with its state change, in channel order, with ids stable until acknowledged', async () => {
      const s = store();
      await s.events.announceConsumer(T, 60_000);
      assert.equal(s.events.recording, true);
      await s.present(CHANNEL, user(1), 'a', 1000, PUBLIC, T);
      await s.present(CHANNEL, user(1), 'b', 5000, PUBLIC, T + 1); // another tab: no event
      await s.present(CHANNEL, user(1), 'a', 1000, PUBLIC, T + 2); // a heartbeat: no event
      await s.present(CHANNEL, user(2), 'a', 1000, COUNT_ONLY, T + 3); // count-only: identities kept
      await s.leave(CHANNEL, 2, 'a', null, T + 4);
      await s.present('/other', user(3), 'a', 1000, NOBODY, T + 5); // nobody may view: still an event

      const first = (await readAll(s, T + 10)).flat();
      const again = (await readAll(s, T + 10)).flat();
      assert.deepEqual(
        again,
        first,
        'unacknowledged events are read again, ids unchanged',
      );
      const byChannel = Object.fromEntries(
        first.map((p) => [p.channel, p.events]),
      );
      assert.deepEqual(
        byChannel[CHANNEL]!.map((e) => [e.name, e.userId, e.at]),
        [
          ['channel_occupied', 1, T],
          ['member_added', 1, T],
          ['member_added', 2, T + 3],
          ['member_removed', 2, T + 4],
        ],
      );
      assert.deepEqual(
        byChannel['/other']!.map((e) => [e.name, e.userId]),
        [
          ['channel_occupied', 3],
          ['member_added', 3],
        ],
      );
      const ids = first.flatMap((p) => p.events.map((e) => e.id));
      assert.equal(new Set(ids).size, ids.length, 'ids are unique');
      assert.ok(
        ids.every((id) => id.endsWith(`@${CHANNEL}`) || id.endsWith('@/other')),
      );

      await Promise.all(
        Array.from({ length: s.events.shards }, async (_, shard) =>
          s.events.ack(
            shard,
            await s.events.readDue(shard, T + 10, 1000, 1000),
            T + 10,
          ),
        ),
      );
      assert.deepEqual(
        await drain(s, T + 20),
        [],
        'acknowledged events are gone',
      );

      // The sweep's leaves are events too: both tabs of user 1 expire, the channel empties.
      await s.sweep(T + 6000);
      assert.deepEqual((await drain(s, T + 6001)).sort(), [
        `channel_vacated:1@${CHANNEL}`,
        'channel_vacated:3@/other',
        `member_removed:1@${CHANNEL}`,
        'member_removed:3@/other',
      ]);
    });

    it('another process records while one consumes, and a channel leaves the index only after a second, later empty visit', async () => {
      const consumer = store();
      const other = await connect();
      await consumer.events.announceConsumer(T, 60_000);
      assert.equal(await other.events.refreshRecording(T + 1), true);
      await other.present(CHANNEL, user(7), 'a', 1000, PUBLIC, T + 1);
      await other.leave(CHANNEL, 7, 'a', PUBLIC, T + 2);
      assert.deepEqual(await drain(consumer, T + 3), [
        `channel_occupied:7@${CHANNEL}`,
        `member_added:7@${CHANNEL}`,
        `member_removed:7@${CHANNEL}`,
        `channel_vacated:7@${CHANNEL}`,
      ]);
      const due = async (now: number) =>
        (await readAll(consumer, now)).flat().map((p) => p.channel);
      assert.deepEqual(
        await due(T + 4),
        [CHANNEL],
        'looked at again after delivering',
      );
      await drain(consumer, T + 4); // empty: one more look after the grace period
      assert.deepEqual(await due(T + 5), []);
      const later = T + 4 + EVENT_INDEX_GRACE_MS + 1;
      assert.deepEqual(await due(later), [CHANNEL]);
      await drain(consumer, later);
      assert.deepEqual(
        await due(later + 10 * EVENT_INDEX_GRACE_MS),
        [],
        'dropped from the index',
      );

      // A change after the first empty look replaces the mark: its events are found at once.
      await other.present(CHANNEL, user(8), 'a', 1000, PUBLIC, later + 1);
      assert.deepEqual(await drain(consumer, later + 2), [
        `channel_occupied:8@${CHANNEL}`,
        `member_added:8@${CHANNEL}`,
      ]);
    });

    it('a shard lease has one holder at a time until released', async () => {
      const s = store();
      const other = await connect();
      assert.equal(await s.events.lease(0, 'p1', 60_000, T), true);
      assert.equal(
        await s.events.lease(0, 'p1', 60_000, T + 1),
        true,
        'renewed',
      );
      assert.equal(await other.events.lease(0, 'p2', 60_000, T + 2), false);
      assert.equal(await s.events.lease(0, 'p1', 60_000, T + 3, true), false);
      assert.equal(await other.events.lease(0, 'p2', 60_000, T + 4), true);
      await other.events.lease(0, 'p2', 60_000, T + 5, true);
    });

    it('counts present clients and channels as they change', async () => {
      const s = store();
      const other = await connect();
      const base = await s.counts();
      const delta = async () => {
        await s.counts(); // writes this process' pending deltas (a store writes them once a second)
        const now = await other.counts();
        return [now.channels - base.channels, now.clients - base.clients];
      };
      await s.present(CHANNEL, user(1), 'a', 1000, PUBLIC, T);
      await s.present(CHANNEL, user(1), 'b', 5000, PUBLIC, T);
      await s.present(CHANNEL, user(1), 'a', 1000, PUBLIC, T + 1);
      await other.present('/other', user(2), 'a', 1000, PUBLIC, T);
      assert.deepEqual(await delta(), [2, 3]);
      await s.leave(CHANNEL, 1, 'b', PUBLIC, T + 2);
      assert.deepEqual(await delta(), [2, 2]);
      await s.sweep(T + 2000);
      assert.deepEqual(await delta(), [0, 0]);
    });
  });
}
