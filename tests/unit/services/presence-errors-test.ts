import { module, test } from 'qunit';
import { settled } from '@ember/test-helpers';
import { setupTest } from 'dummy/tests/helpers';
import { PresenceRequestError } from 'ember-presence';
import { setupPresenceTest } from '../support/setup';

module('Unit | Service | presence > failures and retries', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks);

  test('429 waits extras.wait_seconds, then retries', async function (assert) {
    ctx.server.respondNextUpdateWith(
      429,
      {
        errors: ['slow down'],
        error_type: 'rate_limit',
        extras: { wait_seconds: 3 },
      },
      { 'Retry-After': '3' },
    );
    const channel = ctx.presence().getChannel('/site/online');
    let resolved = false;
    const entered = channel.enter().then(() => (resolved = true));
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);
    assert.false(resolved, 'enter is not settled by a 429');

    ctx.clock.tick(2_999);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'nothing before wait_seconds',
    );
    ctx.clock.tick(1);
    await entered;
    assert.strictEqual(
      ctx.server.updates.length,
      2,
      'retried once the wait is over',
    );
    assert.true(channel.present);
  });

  test('429 without wait_seconds waits 10 s', async function (assert) {
    ctx.server.respondNextUpdateWith(429, {
      errors: ['slow down'],
      error_type: 'rate_limit',
    });
    const entered = ctx.presence().getChannel('/site/online').enter();
    await settled();
    ctx.clock.tick(9_999);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);
    ctx.clock.tick(1);
    await entered;
    assert.strictEqual(ctx.server.updates.length, 2);
  });

  test('a 500 backs off exponentially and keeps the queued events', async function (assert) {
    ctx.server.respondNextUpdateWith(500, { errors: ['oops'] });
    ctx.server.respondNextUpdateWith(502, {});
    const presence = ctx.presence();
    const a = presence.getChannel('/a/1');
    const entered = a.enter({ onlyWhileActive: false });
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);

    // Queued during the back-off: must go out with the retry.
    const b = presence.getChannel('/b/1');
    const enteredB = b.enter({ onlyWhileActive: false });
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'no request during the back-off',
    );

    ctx.clock.tick(499);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);
    ctx.clock.tick(1);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      2,
      'first retry after 500 ms',
    );

    ctx.clock.tick(999);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 2);
    ctx.clock.tick(1);
    await Promise.all([entered, enteredB]);
    assert.strictEqual(
      ctx.server.updates.length,
      3,
      'second retry after 1000 ms',
    );
    assert.deepEqual(
      ctx.server.updates[2]?.present,
      ['/a/1', '/b/1'],
      'nothing was lost',
    );
  });

  test('a leave whose request failed is retried', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    await channel.enter({ onlyWhileActive: false });
    ctx.server.respondNextUpdateWith(503, {});
    let left = false;
    const leaving = channel.leave().then(() => (left = true));
    await settled();
    assert.false(left, 'leave settles only when the server answered');
    ctx.clock.tick(500);
    await leaving;
    assert.deepEqual(ctx.server.updates.at(-1)?.leave, ['/site/online']);
  });

  test('back-off doubles from backoffMinMs and is capped at backoffMaxMs', async function (assert) {
    const expected = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
    for (let i = 0; i < expected.length; i++)
      ctx.server.respondNextUpdateWith(500, {});
    const channel = ctx.presence().getChannel('/site/online');
    const entered = channel.enter({ onlyWhileActive: false });
    await settled();
    for (const delay of expected) {
      const before = ctx.server.updates.length;
      ctx.clock.tick(delay - 1);
      await settled();
      assert.strictEqual(
        ctx.server.updates.length,
        before,
        `no retry before ${delay} ms`,
      );
      ctx.clock.tick(1);
      await settled();
      assert.strictEqual(
        ctx.server.updates.length,
        before + 1,
        `retry after ${delay} ms`,
      );
    }
    ctx.clock.tick(30_000);
    await entered;
    assert.true(channel.present, 'the enter resolves once the server recovers');
  });

  test('a 403 rejects the enter with a PresenceRequestError instead of retrying forever', async function (assert) {
    ctx.server.respondNextUpdateWith(403, {
      errors: ['You must be logged in'],
      error_type: 'not_logged_in',
    });
    const channel = ctx.presence().getChannel('/site/online');
    try {
      await channel.enter();
      assert.true(false, 'should reject');
    } catch (error) {
      assert.true(error instanceof PresenceRequestError);
      assert.strictEqual(
        (error as PresenceRequestError).errorType,
        'not_logged_in',
      );
    }
    assert.false(channel.present);
    ctx.clock.tick(60_000);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);
  });

  test('a CSRF token set on the service is sent as a header', async function (assert) {
    const presence = ctx.presence();
    presence.setCsrfToken('tok-123');
    await presence.getChannel('/site/online').enter();
    assert.strictEqual(
      ctx.server.updates[0]?.headers['X-CSRF-Token'],
      'tok-123',
    );
  });
});

module('Unit | Service | presence > CSRF from a meta tag', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks, {
    csrf: { metaName: 'csrf-token', headerName: 'X-Token' },
  });

  test('the token is read from the configured meta tag at send time', async function (assert) {
    const meta = document.createElement('meta');
    meta.name = 'csrf-token';
    meta.content = 'from-meta';
    document.head.appendChild(meta);
    try {
      await ctx.presence().getChannel('/site/online').enter();
      assert.strictEqual(
        ctx.server.updates[0]?.headers['X-Token'],
        'from-meta',
      );
    } finally {
      meta.remove();
    }
  });
});

module('Unit | Service | presence > debounce and throttle', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks, { debounceMs: 500, throttleMs: 1000 });

  test('changes are debounced 500 ms and throttled to one request per second', async function (assert) {
    const presence = ctx.presence();
    void presence.getChannel('/a/1').enter({ onlyWhileActive: false });
    ctx.clock.tick(300);
    void presence.getChannel('/b/1').enter({ onlyWhileActive: false });
    ctx.clock.tick(499);
    // (No settled() while an update is due: its test waiter holds until the fake clock reaches it.)
    assert.strictEqual(
      ctx.server.updates.length,
      0,
      'the second change restarted the debounce',
    );
    ctx.clock.tick(1);
    await settled();
    assert.deepEqual(
      ctx.server.updates[0]?.present,
      ['/a/1', '/b/1'],
      'one request for both',
    );

    void presence.getChannel('/c/1').enter({ onlyWhileActive: false });
    ctx.clock.tick(500);
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'throttled: not within 1 s of the last request',
    );
    ctx.clock.tick(500);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 2);
  });

  test('a steady stream of changes still goes out within debounce + throttle', async function (assert) {
    const presence = ctx.presence();
    for (let i = 0; i < 5; i++) {
      void presence.getChannel(`/topic/${i}`).enter({ onlyWhileActive: false });
      ctx.clock.tick(400); // always within the debounce of the previous change
    }
    // First change at 0, so the cap (500 + 1000) fell due during the ticks.
    assert.strictEqual(ctx.server.updates.length, 1);
    assert.deepEqual(ctx.server.updates[0]?.present, [
      '/topic/0',
      '/topic/1',
      '/topic/2',
      '/topic/3',
    ]);
    ctx.clock.tick(1000);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 2);
  });
});
