import { module, test } from 'qunit';
import {
  backoffDelay,
  changeDueAt,
  heartbeatDueAt,
  isHeartbeatDue,
  nextUpdateAt,
  rateLimitDelay,
  settledWaitsForUpdate,
  subscribeRetryDelay,
  type ScheduleConfig,
  type UpdateTimes,
} from 'ember-presence/-private/schedule';

const config: ScheduleConfig = {
  debounceMs: 500,
  throttleMs: 1_000,
  heartbeatMs: 30_000,
  backoffMinMs: 500,
  backoffMaxMs: 30_000,
  rateLimitWaitMs: 10_000,
  subscribeRetryMs: 5_000,
};

const never: UpdateTimes = {
  lastChangeAt: -Infinity,
  dirtySince: -Infinity,
  lastSentAt: -Infinity,
  retryAt: -Infinity,
};

module('Unit | schedule', function () {
  test('a change goes out debounceMs after the last one', function (assert) {
    assert.strictEqual(
      changeDueAt(
        { ...never, lastChangeAt: 10_000, dirtySince: 10_000 },
        config,
      ),
      10_500,
    );
    assert.strictEqual(
      changeDueAt(
        { ...never, lastChangeAt: 10_300, dirtySince: 10_000 },
        config,
      ),
      10_800,
      'a newer change pushes it back',
    );
  });

  test('a stream of changes still goes out after debounce + throttle', function (assert) {
    assert.strictEqual(
      changeDueAt(
        { ...never, lastChangeAt: 12_000, dirtySince: 10_000 },
        config,
      ),
      11_500,
    );
  });

  test('changes go out at most once per throttleMs, and not before a retry is allowed', function (assert) {
    const times = { ...never, lastChangeAt: 10_000, dirtySince: 10_000 };
    assert.strictEqual(
      changeDueAt({ ...times, lastSentAt: 9_800 }, config),
      10_800,
    );
    assert.strictEqual(
      changeDueAt({ ...times, retryAt: 20_000 }, config),
      20_000,
    );
  });

  test('zero debounce and throttle: at once', function (assert) {
    const immediate = { ...config, debounceMs: 0, throttleMs: 0 };
    assert.strictEqual(
      changeDueAt(
        { ...never, lastChangeAt: 5, dirtySince: 5, lastSentAt: 5 },
        immediate,
      ),
      5,
    );
  });

  test('heartbeat: heartbeatMs after the oldest report, throttled, after any retry', function (assert) {
    assert.strictEqual(
      heartbeatDueAt(1_000, { lastSentAt: 1_000, retryAt: -Infinity }, config),
      31_000,
    );
    assert.strictEqual(
      heartbeatDueAt(1_000, { lastSentAt: 30_500, retryAt: -Infinity }, config),
      31_500,
      'throttled behind the last request',
    );
    assert.strictEqual(
      heartbeatDueAt(1_000, { lastSentAt: 1_000, retryAt: 40_000 }, config),
      40_000,
    );
  });

  test('isHeartbeatDue: from heartbeatMs after the last report on', function (assert) {
    assert.false(isHeartbeatDue(1_000, 30_999, config));
    assert.true(isHeartbeatDue(1_000, 31_000, config));
    assert.true(isHeartbeatDue(-Infinity, 0, config), 'never reported: due');
  });

  test('nextUpdateAt: changes first, then heartbeats, then unconfirmed channels, else nothing', function (assert) {
    const times = {
      lastChangeAt: 10_000,
      dirtySince: 10_000,
      lastSentAt: 2_000,
      retryAt: -Infinity,
    };
    const cases: [
      dirty: boolean,
      oldestReportAt: number | undefined,
      unconfirmed: boolean,
      retryAt: number,
      expected: number | undefined,
      why: string,
    ][] = [
      [true, 1_000, true, -Infinity, 10_500, 'the change'],
      [false, 1_000, true, -Infinity, 31_000, 'the heartbeat'],
      [
        false,
        undefined,
        true,
        -Infinity,
        32_000,
        'heartbeatMs after the last request',
      ],
      [false, undefined, true, 50_000, 50_000, 'not before a retry'],
      [false, undefined, false, -Infinity, undefined, 'nothing to send'],
    ];
    for (const [
      dirty,
      oldestReportAt,
      unconfirmed,
      retryAt,
      expected,
      why,
    ] of cases) {
      assert.strictEqual(
        nextUpdateAt(
          { dirty, oldestReportAt, unconfirmed },
          { ...times, retryAt },
          config,
        ),
        expected,
        why,
      );
    }
  });

  test('back-off doubles from backoffMinMs up to backoffMaxMs', function (assert) {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((failures) =>
        backoffDelay(failures, config),
      ),
      [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
    );
    assert.strictEqual(backoffDelay(100, config), 30_000, 'stays at the cap');
  });

  test("rate limit: the server's wait, else rateLimitWaitMs", function (assert) {
    assert.strictEqual(rateLimitDelay(3_000, config), 3_000);
    assert.strictEqual(rateLimitDelay(0, config), 0);
    assert.strictEqual(rateLimitDelay(undefined, config), 10_000);
  });

  test('subscribe retries every subscribeRetryMs', function (assert) {
    assert.strictEqual(subscribeRetryDelay(config), 5_000);
    assert.strictEqual(subscribeRetryDelay({ subscribeRetryMs: 250 }), 250);
  });

  test('settled() waits for a due change only', function (assert) {
    const due = {
      dirty: true,
      retryAt: -Infinity,
      at: 1_000,
      manualClock: false,
    };
    assert.true(settledWaitsForUpdate(due, 500), 'a debounced change');
    assert.false(
      settledWaitsForUpdate({ ...due, dirty: false }, 500),
      'not a heartbeat',
    );
    assert.false(
      settledWaitsForUpdate({ ...due, retryAt: 2_000, at: 2_000 }, 500),
      'not through a back-off',
    );
    assert.false(
      settledWaitsForUpdate({ ...due, manualClock: true }, 500),
      'not a debounce on a manual clock',
    );
    assert.true(
      settledWaitsForUpdate({ ...due, manualClock: true, at: 500 }, 500),
      'a change due now on a manual clock',
    );
  });
});
