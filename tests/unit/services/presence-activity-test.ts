import { module, test } from 'qunit';
import { settled } from '@ember/test-helpers';
import { setupTest } from 'dummy/tests/helpers';
import { setupPresenceTest } from '../support/setup';

function setVisibility(state: 'visible' | 'hidden'): void {
  Object.defineProperty(document, 'visibilityState', {
    configurable: true,
    get: () => state,
  });
  document.dispatchEvent(new Event('visibilitychange'));
}

module('Unit | Service | presence > activity', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks);

  hooks.afterEach(function () {
    // Drop the own property: the real getter on Document.prototype takes over again.
    delete (document as { visibilityState?: unknown }).visibilityState;
  });

  const summary = () =>
    ctx.server.updates.map(({ present, leave }) => ({ present, leave }));

  test('no input for userUnseenTime reports one leave; input reports present again', async function (assert) {
    const channel = ctx.presence().getChannel('/topic/1/reply');
    await channel.enter();
    ctx.clock.tick(59_999);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      2,
      'still present (one heartbeat)',
    );
    ctx.clock.tick(1);
    await settled();
    ctx.clock.tick(300_000);
    await settled();
    assert.deepEqual(
      summary().slice(2),
      [{ present: [], leave: ['/topic/1/reply'] }],
      'left exactly once',
    );
    assert.true(
      channel.present,
      'the handle is still present from the app’s point of view',
    );

    window.dispatchEvent(new KeyboardEvent('keydown'));
    await settled();
    assert.deepEqual(
      summary().slice(3),
      [{ present: ['/topic/1/reply'], leave: [] }],
      'present again',
    );
  });

  test('a tab hidden for browserHiddenTime reports a leave; showing it reports present again', async function (assert) {
    const channel = ctx.presence().getChannel('/topic/1/reply');
    await channel.enter({ activeOptions: { browserHiddenTime: 20_000 } });
    setVisibility('hidden');
    ctx.clock.tick(19_999);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);
    ctx.clock.tick(1);
    await settled();
    assert.deepEqual(summary().at(-1), {
      present: [],
      leave: ['/topic/1/reply'],
    });

    setVisibility('visible');
    await settled();
    assert.deepEqual(summary().at(-1), {
      present: ['/topic/1/reply'],
      leave: [],
    });
    assert.strictEqual(ctx.server.updates.length, 3);
  });

  test('onlyWhileActive: false stays present through inactivity', async function (assert) {
    const presence = ctx.presence();
    await presence.getChannel('/site/online').enter({ onlyWhileActive: false });
    await presence.getChannel('/topic/1/reply').enter();
    setVisibility('hidden');
    ctx.clock.tick(120_000);
    await settled();
    const leaves = ctx.server.updates.flatMap((u) => u.leave);
    assert.deepEqual(
      leaves,
      ['/topic/1/reply'],
      'only the onlyWhileActive channel left',
    );
    const later = ctx.server.updates.slice(2);
    assert.true(later.length > 0, 'requests went out after the enters');
    assert.true(
      later.every((u) => u.present.includes('/site/online')),
      'the other kept being reported present (heartbeats)',
    );
  });

  test('entering while inactive resolves without a request', async function (assert) {
    const presence = ctx.presence();
    ctx.clock.tick(61_000);
    await presence.getChannel('/topic/1/reply').enter();
    await settled();
    assert.strictEqual(ctx.server.updates.length, 0);
    window.dispatchEvent(new MouseEvent('pointerdown'));
    await settled();
    assert.deepEqual(summary(), [{ present: ['/topic/1/reply'], leave: [] }]);
  });
});
