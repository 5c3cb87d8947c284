import { module, test } from 'qunit';
import { applySnapshot } from 'ember-presence/-private/apply-snapshot';
import { applyMessage } from 'ember-presence/-private/apply-message';
import {
  FIRST_MESSAGE_ID_STEP,
  detectGap,
  gapLogLine,
} from 'ember-presence/-private/detect-gap';
import {
  GLOBAL_IDS_PER_MS,
  firstMessageIdBase,
  presenceBusChannel,
} from 'ember-presence/test-support/-private/core';
import { busChannelFor } from 'ember-presence/-private/shared-channel';
import type { ChannelData } from 'ember-presence/-private/types';
import { user } from '../support/test-server';

const ann = user(1, 'ann');
const bob = user(2, 'bob');
const cat = user(3, 'cat');
const dan = user(4, 'dan');
const eve = user(5, 'eve');

module('Unit | reducers | applySnapshot', function () {
  test('a users snapshot becomes data with count = number of users', function (assert) {
    assert.deepEqual(
      applySnapshot({ users: [ann, bob], count: 2, last_message_id: 7 }),
      {
        users: [ann, bob],
        count: 2,
        lastMessageId: 7,
      },
    );
  });

  test('a count-only snapshot has null users; a null last_message_id becomes 0', function (assert) {
    assert.deepEqual(applySnapshot({ count: 41, last_message_id: null }), {
      users: null,
      count: 41,
      lastMessageId: 0,
    });
  });

  test('only the four user fields are kept, duplicates collapse', function (assert) {
    const data = applySnapshot({
      users: [{ ...ann, email: 'secret@example.com' }, ann],
      count: 2,
      last_message_id: 1,
    });
    assert.deepEqual(data?.users, [ann]);
  });

  test('a capped users snapshot keeps its count of everyone present', function (assert) {
    assert.deepEqual(
      applySnapshot({ users: [ann, bob], count: 9, last_message_id: 7 }),
      { users: [ann, bob], count: 9, lastMessageId: 7 },
    );
    assert.deepEqual(
      applySnapshot({ users: [], count: 3, last_message_id: 7 }),
      { users: [], count: 3, lastMessageId: 7 },
      'nobody shown is still a users channel',
    );
  });

  test('a users snapshot without count counts its distinct users', function (assert) {
    assert.deepEqual(
      applySnapshot({ users: [ann, bob, ann], last_message_id: 7 }),
      { users: [ann, bob], count: 2, lastMessageId: 7 },
    );
  });

  test('a users snapshot whose count matches its distinct users is accepted', function (assert) {
    assert.deepEqual(
      applySnapshot({ users: [ann, ann], count: 1, last_message_id: 7 }),
      { users: [ann], count: 1, lastMessageId: 7 },
    );
  });

  test('malformed snapshots are refused', function (assert) {
    for (const bad of [
      null,
      'x',
      [],
      { count: 1 },
      { count: -1, last_message_id: 1 },
      { count: 1, last_message_id: 'x' },
      { users: [{ id: 'x' }], count: 1, last_message_id: 1 },
      { users: 'nope', count: 1, last_message_id: 1 },
      { users: [ann, bob], count: 1, last_message_id: 1 },
      { users: [ann], count: 0, last_message_id: 1 },
      { users: [ann], count: -1, last_message_id: 1 },
      { users: [ann], count: 1.5, last_message_id: 1 },
      { users: [ann], count: '3', last_message_id: 1 },
      { users: [ann], count: null, last_message_id: 1 },
    ]) {
      assert.strictEqual(applySnapshot(bad), undefined, JSON.stringify(bad));
    }
  });
});

module('Unit | reducers | applyMessage', function () {
  const base: ChannelData = { users: [ann], count: 1, lastMessageId: 4 };
  const counted: ChannelData = { users: null, count: 10, lastMessageId: 4 };

  test('entering_users adds users, deduplicated by id, without mutating the input', function (assert) {
    const outcome = applyMessage(base, 5, { entering_users: [bob, ann] });
    assert.deepEqual(outcome, {
      type: 'applied',
      data: { users: [ann, bob], count: 2, lastMessageId: 5 },
    });
    assert.deepEqual(base.users, [ann], 'input untouched');
  });

  test('leaving_user_ids removes users', function (assert) {
    const outcome = applyMessage({ ...base, users: [ann, bob], count: 2 }, 5, {
      leaving_user_ids: [1],
    });
    assert.deepEqual(outcome, {
      type: 'applied',
      data: { users: [bob], count: 1, lastMessageId: 5 },
    });
  });

  test('entering and leaving in one message: entering added first, then leaving removed', function (assert) {
    assert.deepEqual(
      applyMessage(base, 5, { entering_users: [bob], leaving_user_ids: [1] }),
      {
        type: 'applied',
        data: { users: [bob], count: 1, lastMessageId: 5 },
      },
    );
    assert.deepEqual(
      applyMessage(base, 5, { entering_users: [bob], leaving_user_ids: [2] }),
      {
        type: 'applied',
        data: { users: [ann], count: 1, lastMessageId: 5 },
      },
      'a user who enters and leaves in one message is gone',
    );
  });

  test('without count_delta, an uncapped count stays the number of users', function (assert) {
    assert.deepEqual(
      applyMessage(base, 5, { entering_users: [ann] }),
      {
        type: 'applied',
        data: { users: [ann], count: 1, lastMessageId: 5 },
      },
      'an entering user already listed',
    );
    assert.deepEqual(
      applyMessage(base, 5, { leaving_user_ids: [99] }),
      {
        type: 'applied',
        data: { users: [ann], count: 1, lastMessageId: 5 },
      },
      'a leaving id not listed',
    );
  });

  test('count_delta adjusts a count-only channel', function (assert) {
    assert.deepEqual(applyMessage(counted, 5, { count_delta: -3 }), {
      type: 'applied',
      data: { users: null, count: 7, lastMessageId: 5 },
    });
  });

  test('a message id other than lastMessageId + 1 is a gap', function (assert) {
    assert.deepEqual(applyMessage(base, 7, { entering_users: [bob] }), {
      type: 'gap',
      gap: { received: 7, expected: 5 },
    });
    assert.deepEqual(applyMessage(base, 3, { entering_users: [bob] }), {
      type: 'gap',
      gap: { received: 3, expected: 5 },
    });
  });

  test('{"resync":true} asks for a refetch, on any channel', function (assert) {
    for (const data of [base, counted]) {
      assert.deepEqual(applyMessage(data, 5, { resync: true }), {
        type: 'resync',
      });
    }
    assert.deepEqual(
      applyMessage(base, 6, { resync: true }),
      { type: 'gap', gap: { received: 6, expected: 5 } },
      'a message was missed before it',
    );
  });

  test('anything unexpected is reported as such', function (assert) {
    const cases: [ChannelData, unknown][] = [
      [base, null],
      [base, {}],
      [base, { surprise: 1 }],
      [base, { entering_users: 'bob' }],
      [base, { leaving_user_ids: ['1'] }],
      [base, { entering_users: [bob], leaving_user_ids: ['1'] }],
      [base, { entering_users: [bob], count_delta: 'x' }],
      [base, { count_delta: 1.5 }],
      [base, { count_delta: -1 }],
      [base, { entering_users: [bob], count_delta: 0 }],
      [base, { resync: false }],
      [base, { resync: 1 }],
      [base, { resync: true, entering_users: [bob] }],
      [counted, { entering_users: [bob] }],
      [counted, { leaving_user_ids: [1] }],
      [counted, { entering_users: [bob], count_delta: 1 }],
      [counted, { leaving_user_ids: [1], count_delta: -1 }],
      [counted, { count_delta: 1.5 }],
      [counted, { count_delta: -11 }],
      [counted, { resync: true, count_delta: 1 }],
    ];
    for (const [data, payload] of cases) {
      assert.strictEqual(
        applyMessage(data, 5, payload).type,
        'unexpected',
        JSON.stringify(payload),
      );
    }
  });
});

module('Unit | reducers | applyMessage > maxUsersShown', function () {
  // Two users shown of five present.
  const capped: ChannelData = { users: [ann, bob], count: 5, lastMessageId: 4 };

  test('a user entering while the shown list is full only counts: {"count_delta":1}', function (assert) {
    assert.deepEqual(applyMessage(capped, 5, { count_delta: 1 }), {
      type: 'applied',
      data: { users: [ann, bob], count: 6, lastMessageId: 5 },
    });
  });

  test('users leaving who were not shown only count: {"count_delta":-n}', function (assert) {
    assert.deepEqual(applyMessage(capped, 5, { count_delta: -3 }), {
      type: 'applied',
      data: { users: [ann, bob], count: 2, lastMessageId: 5 },
    });
  });

  test('a shown user leaving makes room for the earliest waiting one', function (assert) {
    const outcome = applyMessage(capped, 5, {
      entering_users: [cat],
      leaving_user_ids: [1],
      count_delta: -1,
    });
    assert.deepEqual(outcome, {
      type: 'applied',
      data: { users: [bob, cat], count: 4, lastMessageId: 5 },
    });
    assert.deepEqual(capped.users, [ann, bob], 'input untouched');
  });

  test('a sweep combines the shown users leaving, the waiting ones shown and the unshown ones leaving', function (assert) {
    // ann, dan and eve shown; bob and cat waiting; two more present, not shown. The sweep expires
    // ann, dan, eve and those two.
    const data: ChannelData = {
      users: [ann, dan, eve],
      count: 7,
      lastMessageId: 4,
    };
    assert.deepEqual(
      applyMessage(data, 5, {
        entering_users: [bob, cat],
        leaving_user_ids: [1, 4, 5],
        count_delta: -5,
      }),
      {
        type: 'applied',
        data: { users: [bob, cat], count: 2, lastMessageId: 5 },
      },
    );
  });

  test('a present user shown once the cap allows it does not count twice: count_delta 0', function (assert) {
    assert.deepEqual(
      applyMessage(capped, 5, { entering_users: [cat], count_delta: 0 }),
      {
        type: 'applied',
        data: { users: [ann, bob, cat], count: 5, lastMessageId: 5 },
      },
    );
  });

  test('without count_delta the count moves with the shown list', function (assert) {
    assert.deepEqual(
      applyMessage(capped, 5, { entering_users: [cat] }),
      {
        type: 'applied',
        data: { users: [ann, bob, cat], count: 6, lastMessageId: 5 },
      },
      'one more listed: one more present',
    );
    assert.deepEqual(
      applyMessage(capped, 5, { leaving_user_ids: [2] }),
      {
        type: 'applied',
        data: { users: [ann], count: 4, lastMessageId: 5 },
      },
      'one fewer listed: one fewer present',
    );
  });

  test('a count going negative or below the users listed is unexpected', function (assert) {
    for (const payload of [
      { count_delta: -4 },
      { count_delta: -6 },
      { entering_users: [cat, dan, eve], count_delta: -1 },
      { leaving_user_ids: [1], count_delta: -5 },
    ]) {
      assert.strictEqual(
        applyMessage(capped, 5, payload).type,
        'unexpected',
        JSON.stringify(payload),
      );
    }
    assert.strictEqual(
      applyMessage({ ...capped, count: 2 }, 5, { count_delta: -1 }).type,
      'unexpected',
      'on a channel showing everyone',
    );
  });
});

module('Unit | reducers | detectGap', function () {
  test('consecutive ids are no gap; anything else is', function (assert) {
    assert.strictEqual(detectGap(0, 1), null);
    assert.deepEqual(detectGap(4, 6), { received: 6, expected: 5 });
  });

  test('the client and the server share one rule for the first id of a backlog', function (assert) {
    assert.strictEqual(FIRST_MESSAGE_ID_STEP, GLOBAL_IDS_PER_MS);
    for (const now of [0, 1, Date.UTC(2026, 0, 1), Date.UTC(2200, 0, 1)]) {
      const first = firstMessageIdBase(now) + 1;
      assert.strictEqual(detectGap(0, first), null, `created at ${now}`);
      assert.true(Number.isSafeInteger(first));
    }
  });

  test('the client follows the bus channel the server publishes a presence channel on', function (assert) {
    for (const name of ['/site/online', '/topic/1/reply', '/a/b'])
      assert.strictEqual(busChannelFor(name), presenceBusChannel(name));
  });

  test('after a snapshot without messages, the first message of a backlog is accepted whatever its base', function (assert) {
    const base = 1_764_000_000_000 * 1000;
    assert.strictEqual(detectGap(0, base + 1), null, 'a time-derived base');
    assert.deepEqual(
      detectGap(0, base + 2),
      { received: base + 2, expected: 1 },
      'not the first message: the first was missed',
    );
    assert.deepEqual(
      detectGap(base + 5, base + 1_000 + 1),
      { received: base + 1_001, expected: base + 6 },
      'only after an empty snapshot',
    );
  });

  test('the log line is exactly the Discourse one', function (assert) {
    assert.strictEqual(
      gapLogLine('/site/online', { received: 9, expected: 5 }),
      "PresenceChannel '/site/online' dropped message (received 9, expecting 5), resyncing...",
    );
  });
});
