import { module, test } from 'qunit';
import { settled } from '@ember/test-helpers';
import { destroy } from '@ember/destroyable';
import { setupTest } from 'dummy/tests/helpers';
import { setupPresenceTest } from '../support/setup';
import { user } from '../support/test-server';

module('Unit | Service | presence > lifetimes', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks);

  test('destroying the owner leaves and unsubscribes its handles', async function (assert) {
    ctx.server.states.set('/site/online', {
      users: [user(1)],
      count: 1,
      last_message_id: 1,
    });
    const owner = {};
    const channel = ctx.presence().getChannel('/site/online', { owner });
    await channel.subscribe();
    await channel.enter();
    assert.true(ctx.bus.isSubscribed('/presence/site/online'));

    destroy(owner);
    await settled();
    assert.false(channel.present);
    assert.false(channel.subscribed);
    assert.false(
      ctx.bus.isSubscribed('/presence/site/online'),
      'bus subscription dropped',
    );
    assert.deepEqual(
      ctx.server.updates.at(-1)?.leave,
      ['/site/online'],
      'left on the server',
    );
  });

  test('destroying the owner does not disturb other handles of the same channel', async function (assert) {
    ctx.server.states.set('/site/online', {
      users: [user(1)],
      count: 1,
      last_message_id: 1,
    });
    const owner = {};
    const presence = ctx.presence();
    const owned = presence.getChannel('/site/online', { owner });
    const kept = presence.getChannel('/site/online');
    await Promise.all([
      owned.subscribe(),
      kept.subscribe(),
      owned.enter(),
      kept.enter(),
    ]);
    destroy(owner);
    await settled();
    assert.true(kept.subscribed);
    assert.true(kept.present);
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'no leave: another handle is present',
    );
  });

  test('destroying the service stops timers, bus subscriptions and listeners', async function (assert) {
    ctx.server.states.set('/site/online', {
      users: [],
      count: 0,
      last_message_id: null,
    });
    const presence = ctx.presence();
    await presence.getChannel('/site/online').subscribe();
    await presence.getChannel('/site/online').enter();
    assert.true(
      ctx.clock.pendingTimers > 0,
      'heartbeat and activity timers armed',
    );

    presence.destroy();
    await settled();
    assert.strictEqual(ctx.clock.pendingTimers, 0, 'no timer left');
    assert.true(ctx.bus.destroyed, 'bus released');
    window.dispatchEvent(new KeyboardEvent('keydown'));
    window.dispatchEvent(new Event('pagehide'));
    ctx.clock.tick(120_000);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'nothing is sent after destruction',
    );
  });

  test('pagehide sends one beacon leaving every entered channel, with the CSRF field', async function (assert) {
    const beacons: { url: string; body: string }[] = [];
    const nav = navigator as {
      sendBeacon: (url: string, body?: BodyInit | null) => boolean;
    };
    const original = Object.getOwnPropertyDescriptor(nav, 'sendBeacon');
    nav.sendBeacon = (url, body) => {
      beacons.push({ url, body: (body as URLSearchParams).toString() });
      return true;
    };
    try {
      const presence = ctx.presence();
      presence.setCsrfToken('tok');
      await presence.getChannel('/a/1').enter();
      await presence.getChannel('/b/1').enter({ onlyWhileActive: false });
      window.dispatchEvent(new Event('pagehide'));
      assert.strictEqual(beacons.length, 1);
      assert.strictEqual(beacons[0]?.url, '/presence/update');
      const form = new URLSearchParams(beacons[0]?.body);
      assert.strictEqual(form.get('client_id'), 'test-client-id');
      assert.deepEqual(form.getAll('leave_channels[]'), ['/a/1', '/b/1']);
      assert.strictEqual(form.get('authenticity_token'), 'tok');

      window.dispatchEvent(new Event('pagehide'));
      assert.strictEqual(
        beacons.length,
        1,
        'nothing left to leave the second time',
      );

      // Back from the back/forward cache: present again, without the app doing anything.
      window.dispatchEvent(
        new PageTransitionEvent('pageshow', { persisted: true }),
      );
      await settled();
      assert.deepEqual(ctx.server.updates.at(-1)?.present, ['/a/1', '/b/1']);
    } finally {
      if (original) Object.defineProperty(nav, 'sendBeacon', original);
      else delete (nav as { sendBeacon?: unknown }).sendBeacon;
    }
  });

  test('signing out leaves every channel and makes the visitor anonymous', async function (assert) {
    const presence = ctx.presence();
    presence.setCurrentUser({ id: 1 });
    const channel = presence.getChannel('/a/1');
    await channel.enter();
    presence.setCurrentUser(null);
    assert.false(channel.present);
    assert.true(presence.isAnonymous);
    await settled();
    assert.deepEqual(
      ctx.server.updates[1]?.leave,
      ['/a/1'],
      'left on the server',
    );
    ctx.clock.tick(60_000);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      2,
      'no heartbeat for an anonymous visitor',
    );
    await assert.rejects(channel.enter(), /anonymous visitors cannot enter/);
  });

  test('switching user leaves the channels entered as the previous user', async function (assert) {
    const presence = ctx.presence();
    presence.setCurrentUser({ id: 1 });
    const channel = presence.getChannel('/a/1');
    await channel.enter();
    presence.setCurrentUser({ id: 2 });
    await settled();
    assert.false(
      channel.present,
      'the app re-enters as the new user if it wants to',
    );
    assert.deepEqual(ctx.server.updates[1]?.leave, ['/a/1']);
    await channel.enter();
    assert.deepEqual(ctx.server.updates[2]?.present, ['/a/1']);
  });
});

module(
  'Unit | Service | presence > a server that lost its state',
  function (hooks) {
    setupTest(hooks);
    const ctx = setupPresenceTest(hooks);

    test('a fetched state without me, though the server confirmed me, enters again at once', async function (assert) {
      const presence = ctx.presence();
      presence.setCurrentUser({ id: 1 });
      const channel = presence.getChannel('/site/online');
      await channel.enter();
      assert.strictEqual(ctx.server.updates.length, 1);

      // The server restarted empty: its state has someone else, not me.
      ctx.server.states.set('/site/online', {
        users: [user(2)],
        count: 1,
        last_message_id: 5_000_001,
      });
      await channel.subscribe();
      ctx.clock.tick(1_000);
      await settled();
      assert.strictEqual(
        ctx.server.updates.length,
        2,
        'an enter went out long before the 30 s heartbeat',
      );
      assert.deepEqual(ctx.server.updates[1]?.present, ['/site/online']);
      assert.true(channel.present);
    });

    test('a fetched state that lists fewer users than it counts (maxUsersShown) sends nothing: I may be present unlisted', async function (assert) {
      const presence = ctx.presence();
      presence.setCurrentUser({ id: 1 });
      const channel = presence.getChannel('/site/online');
      await channel.enter();
      ctx.server.states.set('/site/online', {
        users: [user(2)],
        count: 2,
        last_message_id: 3,
      });
      await channel.subscribe();
      ctx.clock.tick(1_000);
      await settled();
      assert.strictEqual(ctx.server.updates.length, 1);
      assert.strictEqual(channel.count, 2);
    });

    test('a fetched state with me in it sends nothing', async function (assert) {
      const presence = ctx.presence();
      presence.setCurrentUser({ id: 1 });
      const channel = presence.getChannel('/site/online');
      await channel.enter();
      ctx.server.states.set('/site/online', {
        users: [user(1)],
        count: 1,
        last_message_id: 3,
      });
      await channel.subscribe();
      ctx.clock.tick(1_000);
      await settled();
      assert.strictEqual(ctx.server.updates.length, 1);
    });
  },
);
