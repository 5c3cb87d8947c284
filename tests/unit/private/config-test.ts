import { module, test } from 'qunit';
import { resolveConfig, DEFAULT_CONFIG } from 'ember-presence/-private/config';
import { resolveActiveOptions } from 'ember-presence/-private/activity';

module('Unit | config', function () {
  test('defaults follow the spec', function (assert) {
    const config = resolveConfig(undefined);
    assert.strictEqual(config.heartbeatMs, 30_000);
    assert.strictEqual(config.debounceMs, 500);
    assert.strictEqual(config.throttleMs, 1_000);
    assert.strictEqual(config.backoffMinMs, 500);
    assert.strictEqual(config.backoffMaxMs, 30_000);
    assert.strictEqual(config.baseUrl, '/');
    assert.true(config.startBus);
    assert.true(config.chunkedPolls);
    assert.deepEqual({ ...DEFAULT_CONFIG, csrf: config.csrf }, config);
  });

  test('baseUrl gets a trailing slash', function (assert) {
    assert.strictEqual(
      resolveConfig({ baseUrl: 'https://chat.example.com' }).baseUrl,
      'https://chat.example.com/',
    );
  });

  test('bad values throw errors that name the fix', function (assert) {
    assert.throws(
      () => resolveConfig({ debounceMs: -1 }),
      /debounceMs must be a number of milliseconds ≥ 0.*config\/environment\.js/,
    );
    assert.throws(
      () => resolveConfig({ heartbeatMs: 10 }),
      /heartbeatMs must be at least 1000/,
    );
    assert.throws(
      () => resolveConfig({ backoffMinMs: 10, backoffMaxMs: 5 }),
      /backoffMaxMs \(5\) must not be below backoffMinMs/,
    );
    assert.throws(
      () => resolveConfig({ baseUrl: '' }),
      /baseUrl must be a non-empty string/,
    );
    assert.throws(
      () => resolveConfig({ chunkedPolls: 'no' }),
      /chunkedPolls must be true or false, got "no"/,
    );
    assert.false(resolveConfig({ chunkedPolls: false }).chunkedPolls);
  });

  test('activeOptions default to and must not go below the minimums', function (assert) {
    assert.deepEqual(resolveActiveOptions(undefined), {
      userUnseenTime: 60_000,
      browserHiddenTime: 10_000,
    });
    assert.deepEqual(resolveActiveOptions({ userUnseenTime: 120_000 }), {
      userUnseenTime: 120_000,
      browserHiddenTime: 10_000,
    });
    assert.throws(
      () => resolveActiveOptions({ userUnseenTime: 59_999 }),
      /at least 60000/,
    );
    assert.throws(
      () => resolveActiveOptions({ browserHiddenTime: 9_999 }),
      /at least 10000/,
    );
  });
});
