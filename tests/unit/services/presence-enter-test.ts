import { module, test } from 'qunit';
import { settled, waitUntil } from '@ember/test-helpers';
import { setupTest } from 'dummy/tests/helpers';
import { PresenceChannelFull, PresenceChannelNotFound } from 'ember-presence';
import { setupPresenceTest } from '../support/setup';

/** Why a settled promise rejected, or `undefined` when it did not. */
function rejection(result: PromiseSettledResult<unknown>): unknown {
  return result.status === 'rejected' ? (result.reason as unknown) : undefined;
}

module('Unit | Service | presence > enter and leave', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks);

  test('entering sends one update with the client id and resolves when the server confirms', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    const entered = channel.enter();
    assert.true(channel.present, 'present at once (optimistic)');
    await entered;
    assert.deepEqual(
      ctx.server.updates.map(({ clientId, present, leave }) => ({
        clientId,
        present,
        leave,
      })),
      [{ clientId: 'test-client-id', present: ['/site/online'], leave: [] }],
    );
    assert.true(channel.present);
  });

  test('entering twice sends one request', async function (assert) {
    const presence = ctx.presence();
    const channel = presence.getChannel('/site/online');
    await channel.enter();
    await channel.enter();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'the same handle entering again is a no-op',
    );

    const other = presence.getChannel('/site/online');
    await other.enter();
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'a second handle of an entered channel needs no request',
    );
  });

  test('two handles entering in the same turn share one request', async function (assert) {
    const presence = ctx.presence();
    const a = presence.getChannel('/site/online');
    const b = presence.getChannel('/site/online');
    await Promise.all([a.enter(), b.enter()]);
    assert.strictEqual(ctx.server.updates.length, 1);
  });

  test('enter, leave, leave sends two requests', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    await channel.enter();
    await channel.leave();
    await channel.leave();
    await settled();
    assert.deepEqual(
      ctx.server.updates.map(({ present, leave }) => ({ present, leave })),
      [
        { present: ['/site/online'], leave: [] },
        { present: [], leave: ['/site/online'] },
      ],
    );
    assert.false(channel.present);
  });

  test('a channel stays entered while any handle is present', async function (assert) {
    const presence = ctx.presence();
    const a = presence.getChannel('/site/online');
    const b = presence.getChannel('/site/online');
    await a.enter();
    await b.enter();
    await a.leave();
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'no leave while b is still present',
    );
    await b.leave();
    assert.deepEqual(
      ctx.server.updates[1]?.leave,
      ['/site/online'],
      'the last handle leaving leaves',
    );
  });

  test('a leave issued while the enter is in flight is sent after the enter is answered', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    const release = ctx.server.holdNextUpdate();
    const entered = channel.enter();
    await waitUntil(() => ctx.server.updates.length === 1);

    const left = channel.leave();
    assert.false(channel.present, 'not present as soon as leave() is called');
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'never two requests at once',
    );

    release();
    await entered;
    await left;
    await settled();
    assert.deepEqual(
      ctx.server.updates.map(({ present, leave }) => ({ present, leave })),
      [
        { present: ['/site/online'], leave: [] },
        { present: [], leave: ['/site/online'] },
      ],
    );
  });

  test('an enter followed by a leave in the same turn sends nothing', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    const entered = channel.enter();
    const left = channel.leave();
    await Promise.all([entered, left]);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      0,
      'an update with nothing to say is not sent',
    );
  });

  test('every update carries all present channels and only the queued leaves', async function (assert) {
    const presence = ctx.presence();
    const a = presence.getChannel('/a/1');
    const b = presence.getChannel('/b/1');
    await a.enter();
    await b.enter();
    await a.leave();
    assert.deepEqual(
      ctx.server.updates.map(({ present, leave }) => ({ present, leave })),
      [
        { present: ['/a/1'], leave: [] },
        { present: ['/a/1', '/b/1'], leave: [] },
        { present: ['/b/1'], leave: ['/a/1'] },
      ],
    );
  });

  test('a rejected enter leaves the handle not present and stops heart-beating', async function (assert) {
    ctx.server.refuse.add('/secret/x');
    const channel = ctx.presence().getChannel('/secret/x');
    try {
      await channel.enter();
      assert.true(false, 'enter should have rejected');
    } catch (error) {
      assert.true(
        error instanceof PresenceChannelNotFound,
        'rejects with PresenceChannelNotFound',
      );
      assert.strictEqual(
        (error as PresenceChannelNotFound).channelName,
        '/secret/x',
      );
    }
    assert.false(channel.present, 'not left marked present');
    assert.true(
      channel.error instanceof PresenceChannelNotFound,
      'the handle says why',
    );

    ctx.clock.tick(120_000);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      1,
      'no heartbeat for a refused channel',
    );
  });

  test('an enter refused as full rejects with PresenceChannelFull; other refusals stay PresenceChannelNotFound', async function (assert) {
    ctx.server.respondNextUpdateWith(200, {
      '/room/1': false,
      '/room/2': false,
      '/room/3': true,
      _reasons: { '/room/1': 'full', '/room/2': 'something-new' },
    });
    const presence = ctx.presence();
    const full = presence.getChannel('/room/1');
    const other = presence.getChannel('/room/2');
    const open = presence.getChannel('/room/3');
    const [fullResult, otherResult, openResult] = await Promise.allSettled([
      full.enter(),
      other.enter(),
      open.enter({ onlyWhileActive: false }),
    ]);
    assert.strictEqual(ctx.server.updates.length, 1, 'one request');
    const fullError = rejection(fullResult);
    assert.deepEqual(
      [
        fullError instanceof PresenceChannelFull,
        (fullError as PresenceChannelFull | undefined)?.channelName,
      ],
      [true, '/room/1'],
      'enter rejects with PresenceChannelFull naming the channel',
    );
    assert.false(full.present);
    assert.true(full.error instanceof PresenceChannelFull, 'channel.error');
    assert.strictEqual(full.error?.name, 'PresenceChannelFull');
    const otherError = rejection(otherResult);
    assert.true(
      otherError instanceof PresenceChannelNotFound,
      'an unknown reason is still "not found"',
    );
    assert.strictEqual(openResult.status, 'fulfilled');
    assert.true(open.present);

    ctx.clock.tick(30_000);
    await settled();
    assert.deepEqual(
      ctx.server.updates.slice(1).map((update) => update.present),
      [['/room/3']],
      'the heartbeat leaves the full channel out',
    );
  });

  test('a heartbeat is sent every 30 s while anything is entered, and stops after leaving', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    // Not onlyWhileActive: a minute without input would otherwise (correctly) report the user as away.
    await channel.enter({ onlyWhileActive: false });
    ctx.clock.tick(29_999);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 1);
    ctx.clock.tick(1);
    await settled();
    assert.deepEqual(
      ctx.server.updates[1]?.present,
      ['/site/online'],
      'heartbeat repeats the present channels',
    );
    ctx.clock.tick(30_000);
    await settled();
    assert.deepEqual(ctx.server.updates[2]?.present, ['/site/online']);

    await channel.leave();
    ctx.clock.tick(120_000);
    await settled();
    assert.strictEqual(
      ctx.server.updates.length,
      4,
      'only the leave; no heartbeat with nothing entered',
    );
  });

  test('a heartbeat answered false marks the channel not present and tells the app', async function (assert) {
    const channel = ctx.presence().getChannel('/team/x');
    await channel.enter();
    ctx.server.refuse.add('/team/x'); // access revoked
    ctx.clock.tick(30_000);
    await settled();
    assert.false(channel.present);
    assert.true(
      channel.error instanceof PresenceChannelNotFound,
      'tracked error set',
    );

    ctx.clock.tick(120_000);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 2, 'no more heartbeats');
  });

  test('60 entered channels go out in requests of at most 50, and all keep heart-beating', async function (assert) {
    const presence = ctx.presence();
    const names = Array.from({ length: 60 }, (_, i) => `/topic/${i}/reply`);
    await Promise.all(
      names.map((name) =>
        presence.getChannel(name).enter({ onlyWhileActive: false }),
      ),
    );
    assert.deepEqual(
      ctx.server.updates.map((u) => u.present.length),
      [50, 50],
      'the second request carries the last 10 plus the 40 reported longest ago',
    );
    assert.deepEqual(
      new Set(ctx.server.updates.flatMap((u) => u.present)).size,
      60,
    );

    const before = ctx.server.updates.length;
    ctx.clock.tick(30_000);
    await settled();
    ctx.clock.tick(1_000);
    await settled();
    const heartbeats = ctx.server.updates.slice(before);
    assert.true(
      heartbeats.every((u) => u.present.length <= 50),
      'never more than 50 per request',
    );
    assert.strictEqual(
      new Set(heartbeats.flatMap((u) => u.present)).size,
      60,
      'every channel reported again',
    );
  });

  test('leaving more than 50 channels at once is split too', async function (assert) {
    const presence = ctx.presence();
    const channels = Array.from({ length: 55 }, (_, i) =>
      presence.getChannel(`/topic/${i}/reply`),
    );
    await Promise.all(
      channels.map((channel) => channel.enter({ onlyWhileActive: false })),
    );
    const before = ctx.server.updates.length;
    await Promise.all(channels.map((channel) => channel.leave()));
    const leaves = ctx.server.updates.slice(before).map((u) => u.leave.length);
    assert.deepEqual(leaves, [50, 5]);
  });

  test('activeOptions below the minimums reject with an error naming the fix', async function (assert) {
    const channel = ctx.presence().getChannel('/site/online');
    await assert.rejects(
      channel.enter({ activeOptions: { userUnseenTime: 1000 } }),
      /userUnseenTime must be at least 60000/,
    );
    await assert.rejects(
      channel.enter({ activeOptions: { browserHiddenTime: 5000 } }),
      /browserHiddenTime must be at least 10000/,
    );
    assert.false(channel.present);
  });

  test('getChannel rejects names that are not channel names', function (assert) {
    const presence = ctx.presence();
    assert.throws(
      () => presence.getChannel('site/online'),
      /needs a channel name like '\/site\/online'/,
    );
  });
});
