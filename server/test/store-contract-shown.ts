import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { PresenceStore, PublishRules } from '../src/core/store.js';
import type { BusMessage, PresenceUser } from '../src/core/types.js';
import { firstMessageIdBase } from '../src/core/bus-messages.js';
import { replay } from './store-contract.js';

const T = 1_764_000_000_000;
const CHANNEL = '/site/big';
const BUS = '/presence/site/big';
const TIMEOUT = 60_000;

function user(id: number, name = `User ${id}`): PresenceUser {
  return { id, username: `user${id}`, name, avatar_template: '' };
}

function shown(limit: number | null): PublishRules {
  return { countOnly: false, audience: {}, maxUsersShown: limit };
}

/**
 * The `maxUsersShown` contract (issue 17 item 4; docs/protocol.md §5.2), registered inside
 * runStoreContract: state lists at most K users, the earliest entered, with the true count; change
 * messages say exactly that, and replaying them onto any snapshot gives the current state.
 */
export function shownContract(
  store: () => PresenceStore,
  connect: () => Promise<PresenceStore>,
): void {
  describe('maxUsersShown', () => {
    /** The data of the messages published since `after` (a message id; 0 for all). */
    async function dataSince(after: number): Promise<unknown[]> {
      return (await store().backlog(BUS, after)).map((m) => m.data);
    }
    async function lastId(): Promise<number> {
      return (await store().lastIds([BUS]))[BUS] ?? 0;
    }
    async function listed(now: number): Promise<[number[], number]> {
      const state = await store().state(CHANNEL, false, now);
      assert.ok('users' in state);
      return [state.users.map((u) => u.id), state.count];
    }
    const enter = (id: number, limit: number | null, now: number, tab = 'a') =>
      store().present(CHANNEL, user(id), tab, TIMEOUT, shown(limit), now);

    it('lists the first K users to enter and counts the others', async () => {
      for (let id = 1; id <= 4; id++) await enter(id, 2, T + id);
      await enter(3, 2, T + 10); // a heartbeat of a user who is not listed
      await enter(4, 2, T + 10, 'b'); // their second tab
      assert.deepEqual(await dataSince(0), [
        { entering_users: [user(1)] },
        { entering_users: [user(2)] },
        { count_delta: 1 },
        { count_delta: 1 },
      ]);
      assert.deepEqual(await listed(T + 11), [[1, 2], 4]);
    });

    it("gives a listed leaver's place to the earliest waiting user; waiting leavers only move the count", async () => {
      for (let id = 1; id <= 4; id++) await enter(id, 2, T + id);
      const before = await lastId();
      await store().leave(CHANNEL, 1, 'a', null, T + 10);
      await store().leave(CHANNEL, 4, 'a', null, T + 11);
      await store().leave(CHANNEL, 2, 'a', null, T + 12);
      await enter(5, 2, T + 13);
      await enter(6, 2, T + 14);
      assert.deepEqual(await dataSince(before), [
        { entering_users: [user(3)], leaving_user_ids: [1], count_delta: -1 },
        { count_delta: -1 },
        { leaving_user_ids: [2] },
        { entering_users: [user(5)] },
        { count_delta: 1 },
      ]);
      assert.deepEqual(await listed(T + 15), [[3, 5], 3]);
    });

    it('announces a promoted user with the profile of their latest present', async () => {
      await enter(1, 1, T);
      await enter(2, 1, T + 1);
      await store().present(
        CHANNEL,
        user(2, 'Renamed'),
        'a',
        TIMEOUT,
        shown(1),
        T + 2,
      );
      const before = await lastId();
      await store().leave(CHANNEL, 1, 'a', null, T + 3);
      assert.deepEqual(await dataSince(before), [
        {
          entering_users: [user(2, 'Renamed')],
          leaving_user_ids: [1],
          count_delta: -1,
        },
      ]);
    });

    it('one sweep message says who left the list, who took their places and the whole count change', async () => {
      const rules = shown(2);
      for (let id = 1; id <= 5; id++) {
        // Users 1, 3 and 5 expire (in this order); 2 and 4 stay.
        const timeout = id % 2 === 1 ? 1000 + id : 10 * TIMEOUT;
        await store().present(CHANNEL, user(id), 'a', timeout, rules, T);
      }
      const before = await lastId();
      const snapshot = await store().state(CHANNEL, false, T + 1);
      const result = await store().sweep(T + 2000);
      assert.equal(result.expiredClients, 3);
      assert.deepEqual(await dataSince(before), [
        { entering_users: [user(4)], leaving_user_ids: [1], count_delta: -3 },
      ]);
      assert.deepEqual(await listed(T + 2001), [[2, 4], 2]);
      const after = await store().state(CHANNEL, false, T + 2001);
      assert.deepEqual(
        replay(snapshot, await store().backlog(BUS, before), 0),
        after,
      );
    });

    it('a changed limit tells viewers to resync, and users present before are listed from their next present', async () => {
      for (let id = 1; id <= 3; id++) await enter(id, null, T + id);
      assert.deepEqual(await listed(T + 4), [[1, 2, 3], 3]);
      const before = await lastId();
      await enter(1, 2, T + 10); // the limit arrives with user 1's heartbeat
      assert.deepEqual(await listed(T + 11), [[1], 3]);
      await enter(3, 2, T + 12);
      await enter(2, 2, T + 13); // the list is full: 2 waits
      assert.deepEqual(await listed(T + 14), [[1, 3], 3]);
      await store().leave(CHANNEL, 1, 'a', null, T + 15);
      await enter(2, null, T + 16); // the limit goes away again
      assert.deepEqual(await dataSince(before), [
        { resync: true },
        { entering_users: [user(1)], count_delta: 0 },
        { entering_users: [user(3)], count_delta: 0 },
        { entering_users: [user(2)], leaving_user_ids: [1], count_delta: -1 },
        { resync: true },
      ]);
      assert.deepEqual(await listed(T + 17), [[2, 3], 2]);
    });

    it('a user present since before the limit who leaves unlisted only moves the count', async () => {
      await enter(1, null, T);
      await enter(2, null, T + 1);
      await enter(1, 5, T + 2);
      const before = await lastId();
      await store().leave(CHANNEL, 2, 'a', null, T + 3);
      assert.deepEqual(await dataSince(before), [{ count_delta: -1 }]);
      assert.deepEqual(await listed(T + 4), [[1], 1]);
    });

    it('a new channel with a limit publishes no resync', async () => {
      await enter(1, 3, T);
      assert.deepEqual(await dataSince(0), [{ entering_users: [user(1)] }]);
    });

    it('is ignored on a count-only channel', async () => {
      const rules: PublishRules = {
        countOnly: true,
        audience: {},
        maxUsersShown: 1,
      };
      await store().present(CHANNEL, user(1), 'a', TIMEOUT, rules, T);
      await store().present(CHANNEL, user(2), 'a', TIMEOUT, rules, T + 1);
      await store().leave(CHANNEL, 1, 'a', null, T + 2);
      assert.deepEqual(await dataSince(0), [
        { count_delta: 1 },
        { count_delta: 1 },
        { count_delta: -1 },
      ]);
      assert.deepEqual(await store().state(CHANNEL, true, T + 3), {
        count: 1,
        last_message_id: await lastId(),
      });
    });

    it('rejects a maxUsersShown that is not a positive integer', async () => {
      for (const bad of [0, -1, 1.5, Number.NaN, '2']) {
        const rules = { ...shown(null), maxUsersShown: bad as number };
        await assert.rejects(
          store().present(CHANNEL, user(1), 'a', TIMEOUT, rules, T),
          /maxUsersShown/,
        );
      }
    });

    it('random enters, tabs, heartbeats, leaves, sweeps and limit changes from four processes: every snapshot replays to the next', async () => {
      const peers = [
        store(),
        await connect(),
        await connect(),
        await connect(),
      ];
      let seed = 17;
      const random = (n: number) => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed % n;
      };
      let now = T;
      let limit: number | null = 3;
      let snapshot = await store().state(CHANNEL, false, now);
      let snapshotId = 0;
      const base = firstMessageIdBase(T);
      let replayed = 0;
      for (let step = 0; step < 120; step++) {
        now += 97;
        const peer = peers[random(4)]!;
        const id = 1 + random(9);
        const roll = random(20);
        if (roll === 0) limit = [null, 1, 3, 5][random(4)]!;
        if (roll < 12) {
          const timeout = random(3) === 0 ? 500 : TIMEOUT;
          await peer.present(
            CHANNEL,
            user(id),
            `tab-${random(2)}`,
            timeout,
            shown(limit),
            now,
          );
        } else if (roll < 18) {
          await peer.leave(CHANNEL, id, `tab-${random(2)}`, null, now);
        } else {
          await peer.sweep(now);
        }
        if (step % 10 !== 9) continue;
        const messages: BusMessage[] = await store().backlog(BUS, snapshotId);
        const current = await store().state(CHANNEL, false, now);
        // A resync message means: fetch again. Replay from the snapshot after the last one.
        const resyncAt = messages.findLastIndex(
          (m) => (m.data as Record<string, unknown>)['resync'] === true,
        );
        if (resyncAt < 0) {
          assert.deepEqual(
            replay(snapshot, messages, snapshotId === 0 ? base : snapshotId),
            current,
            `step ${step}`,
          );
          replayed += 1;
        }
        if ('users' in current && limit !== null)
          assert.ok(current.users.length <= limit, `step ${step}`);
        snapshot = current;
        snapshotId = current.last_message_id ?? 0;
      }
      // Most windows had no limit change: the replays above checked them.
      assert.ok(replayed >= 8, `${replayed} windows replayed`);
    });
  });
}
