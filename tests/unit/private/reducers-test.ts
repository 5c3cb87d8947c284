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

  test('anything unexpected is reported as such', function (assert) {
    const cases: [ChannelData, unknown][] = [
      [base, null],
      [base, {}],
      [base, { surprise: 1 }],
      [base, { entering_users: [bob], leaving_user_ids: [1] }],
      [base, { entering_users: 'bob' }],
      [base, { leaving_user_ids: ['1'] }],
      [base, { count_delta: 1 }],
      [counted, { entering_users: [bob] }],
      [counted, { count_delta: 1.5 }],
      [counted, { count_delta: -11 }],
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
