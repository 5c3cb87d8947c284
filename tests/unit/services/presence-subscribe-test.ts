import { module, test } from 'qunit';
import { settled } from '@ember/test-helpers';
import { setupTest } from 'dummy/tests/helpers';
import { PresenceChannelNotFound, PresenceRequestError } from 'ember-presence';
import { setupPresenceTest } from '../support/setup';
import { user } from '../support/test-server';

const ONLINE = '/site/online';
const BUS_ONLINE = '/presence/site/online';

module('Unit | Service | presence > subscribe', function (hooks) {
  setupTest(hooks);
  const ctx = setupPresenceTest(hooks);

  hooks.beforeEach(function () {
    ctx.server.states.set(ONLINE, {
      users: [user(1)],
      count: 1,
      last_message_id: 4,
    });
  });

  test('fields are undefined until subscribed, then come from the server', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    assert.strictEqual(channel.users, undefined);
    assert.strictEqual(channel.count, undefined);
    assert.false(channel.subscribed);
    await channel.subscribe();
    assert.true(channel.subscribed);
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [1],
    );
    assert.strictEqual(channel.count, 1);
    assert.false(channel.countOnly);
    assert.deepEqual(
      ctx.bus.subscribeCalls,
      [{ channel: BUS_ONLINE, lastId: 4 }],
      'follows from the snapshot id',
    );
  });

  test('two handles of one name share one fetch, one bus subscription and the same data', async function (assert) {
    const presence = ctx.presence();
    const a = presence.getChannel(ONLINE);
    const b = presence.getChannel(ONLINE);
    await Promise.all([a.subscribe(), b.subscribe()]);
    assert.strictEqual(ctx.server.gets.length, 1);
    assert.strictEqual(ctx.bus.subscribeCalls.length, 1);

    ctx.bus.publish(BUS_ONLINE, 5, { entering_users: [user(2)] });
    assert.deepEqual(
      a.users?.map((u) => u.id),
      [1, 2],
    );
    assert.deepEqual(
      b.users?.map((u) => u.id),
      [1, 2],
    );

    a.unsubscribe();
    assert.strictEqual(
      a.users,
      undefined,
      'an unsubscribed handle shows nothing',
    );
    ctx.bus.publish(BUS_ONLINE, 6, { leaving_user_ids: [1] });
    assert.deepEqual(
      b.users?.map((u) => u.id),
      [2],
      'the other handle keeps following',
    );

    b.unsubscribe();
    assert.false(
      ctx.bus.isSubscribed(BUS_ONLINE),
      'the last unsubscribe stops following',
    );
  });

  test('subscribing again is a no-op', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    await channel.subscribe();
    assert.strictEqual(ctx.server.gets.length, 1);
  });

  test('entering users are deduplicated by id and leaving users removed', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    ctx.bus.publish(BUS_ONLINE, 5, {
      entering_users: [user(2), user(1, 'renamed')],
    });
    assert.deepEqual(
      channel.users?.map((u) => [u.id, u.username]),
      [
        [1, 'renamed'],
        [2, 'user2'],
      ],
    );
    assert.strictEqual(channel.count, 2);
    ctx.bus.publish(BUS_ONLINE, 6, { leaving_user_ids: [1, 99] });
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [2],
    );
    assert.strictEqual(channel.count, 1);
  });

  test('count-only channels follow count_delta and never have users', async function (assert) {
    ctx.server.states.set('/stats/visitors', {
      count: 41,
      last_message_id: null,
    });
    const channel = ctx.presence().getChannel('/stats/visitors');
    await channel.subscribe();
    assert.strictEqual(channel.users, null);
    assert.true(channel.countOnly);
    assert.strictEqual(channel.count, 41);
    assert.deepEqual(ctx.bus.subscribeCalls, [
      { channel: '/presence/stats/visitors', lastId: 0 },
    ]);
    ctx.bus.publish('/presence/stats/visitors', 1, { count_delta: 3 });
    assert.strictEqual(channel.count, 44);
    ctx.bus.publish('/presence/stats/visitors', 2, { count_delta: -2 });
    assert.strictEqual(channel.count, 42);
  });

  test('a dropped message logs the exact line and refetches the state', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    const logged = await logsDuring(async () => {
      ctx.server.states.set(ONLINE, {
        users: [user(1), user(2), user(3)],
        count: 3,
        last_message_id: 7,
      });
      ctx.bus.publish(BUS_ONLINE, 7, { entering_users: [user(3)] });
      await settled();
    });
    assert.deepEqual(logged, [
      "PresenceChannel '/site/online' dropped message (received 7, expecting 5), resyncing...",
    ]);
    assert.strictEqual(ctx.server.gets.length, 2, 'refetched');
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [1, 2, 3],
      'shows the refetched state',
    );
    assert.deepEqual(
      ctx.bus.subscribeCalls.at(-1),
      { channel: BUS_ONLINE, lastId: 7 },
      'follows from the new id',
    );
    ctx.bus.publish(BUS_ONLINE, 8, { leaving_user_ids: [3] });
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [1, 2],
      'and keeps applying messages after it',
    );
  });

  test('an unexpected payload triggers a resync', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    const logged = await logsDuring(async () => {
      ctx.server.states.set(ONLINE, {
        users: [user(5)],
        count: 1,
        last_message_id: 5,
      });
      ctx.bus.publish(BUS_ONLINE, 5, { something_new: true });
      await settled();
    });
    assert.deepEqual(logged, [
      "PresenceChannel '/site/online' received an unexpected message (payload has no known change key), resyncing...",
    ]);
    assert.strictEqual(ctx.server.gets.length, 2);
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [5],
    );
  });

  test('a {"resync":true} message refetches the state without a warning', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    const logged = await logsDuring(async () => {
      ctx.server.states.set(ONLINE, {
        users: [user(1)],
        count: 3,
        last_message_id: 5,
      });
      ctx.bus.publish(BUS_ONLINE, 5, { resync: true });
      await settled();
    });
    assert.deepEqual(logged, [], 'nothing logged');
    assert.strictEqual(ctx.server.gets.length, 2, 'refetched');
    assert.strictEqual(channel.count, 3, 'shows the refetched state');
    assert.deepEqual(
      ctx.bus.subscribeCalls.at(-1),
      { channel: BUS_ONLINE, lastId: 5 },
      'follows from the new id',
    );
  });

  test('with maxUsersShown, users lists the shown users and count everyone present', async function (assert) {
    ctx.server.states.set(ONLINE, {
      users: [user(1), user(2)],
      count: 5,
      last_message_id: 4,
    });
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [1, 2],
    );
    assert.strictEqual(channel.count, 5);
    assert.false(channel.countOnly);

    ctx.bus.publish(BUS_ONLINE, 5, { count_delta: 1 });
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [1, 2],
      'a user entered, not shown',
    );
    assert.strictEqual(channel.count, 6);

    ctx.bus.publish(BUS_ONLINE, 6, {
      entering_users: [user(3)],
      leaving_user_ids: [1],
      count_delta: -1,
    });
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [2, 3],
      'a shown user left, the earliest waiting one is shown',
    );
    assert.strictEqual(channel.count, 5);
    assert.strictEqual(ctx.server.gets.length, 1, 'no refetch');
  });

  test('subscribe(initialData) makes no request', async function (assert) {
    const channel = ctx.presence().getChannel('/embedded/x');
    await channel.subscribe({
      users: [user(9)],
      count: 1,
      last_message_id: 12,
    });
    assert.strictEqual(ctx.server.gets.length, 0);
    assert.deepEqual(
      channel.users?.map((u) => u.id),
      [9],
    );
    assert.deepEqual(ctx.bus.subscribeCalls, [
      { channel: '/presence/embedded/x', lastId: 12 },
    ]);
  });

  test('channels subscribed in the same turn share one GET', async function (assert) {
    ctx.server.states.set('/a/1', {
      users: [],
      count: 0,
      last_message_id: null,
    });
    const presence = ctx.presence();
    await Promise.all([
      presence.getChannel(ONLINE).subscribe(),
      presence.getChannel('/a/1').subscribe(),
    ]);
    assert.deepEqual(ctx.server.gets, [[ONLINE, '/a/1']]);
  });

  test('60 channels subscribed at once all resolve, in requests of at most 50 names', async function (assert) {
    const presence = ctx.presence();
    const channels = Array.from({ length: 60 }, (_, i) => {
      ctx.server.states.set(`/topic/${i}`, {
        users: [user(i)],
        count: 1,
        last_message_id: i,
      });
      return presence.getChannel(`/topic/${i}`);
    });
    await Promise.all(channels.map((channel) => channel.subscribe()));
    assert.deepEqual(
      ctx.server.gets.map((names) => names.length),
      [50, 10],
    );
    assert.true(
      channels.every(
        (channel, i) => channel.subscribed && channel.users?.[0]?.id === i,
      ),
    );
  });

  test('a missing channel rejects and leaves no shared state behind', async function (assert) {
    const presence = ctx.presence();
    const channel = presence.getChannel('/secret/x');
    try {
      await channel.subscribe();
      assert.true(false, 'should reject');
    } catch (error) {
      assert.true(error instanceof PresenceChannelNotFound);
    }
    assert.false(channel.subscribed);
    assert.strictEqual(channel.users, undefined);
    assert.false(ctx.bus.isSubscribed('/presence/secret/x'), 'never followed');

    // Once it exists, subscribing works from scratch (the failed state was not kept).
    ctx.server.states.set('/secret/x', {
      users: [user(1)],
      count: 1,
      last_message_id: 1,
    });
    await presence.getChannel('/secret/x').subscribe();
    assert.strictEqual(ctx.server.gets.length, 2);
  });

  test('a fetch that cannot succeed rejects every waiting handle, with the URL, status and reason', async function (assert) {
    ctx.server.pretender.get('/presence/get', () => [
      400,
      { 'Content-Type': 'application/json' },
      '{"errors":["bad channels"],"error_type":"invalid_parameters","extras":{"reason":"too_many"}}',
    ]);
    const presence = ctx.presence();
    const results = await Promise.allSettled([
      presence.getChannel(ONLINE).subscribe(),
      presence.getChannel(ONLINE).subscribe(),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    const error = (results[0] as PromiseRejectedResult)
      .reason as PresenceRequestError;
    assert.true(error instanceof PresenceRequestError);
    assert.strictEqual(error.status, 400);
    assert.strictEqual(error.reason, 'too_many');
    assert.strictEqual(error.errorType, 'invalid_parameters');
    assert.strictEqual(
      error.url,
      `${window.location.origin}/presence/get?channels%5B%5D=%2Fsite%2Fonline`,
    );
    assert.true(
      error.message.startsWith(
        `GET ${window.location.origin}/presence/get?channels%5B%5D=%2Fsite%2Fonline failed with 400 invalid_parameters (reason: too_many): bad channels`,
      ),
      error.message,
    );
  });

  test('a server that is down at first retries the GET every 5 s; the list fills in once it is back', async function (assert) {
    let down = true;
    ctx.server.pretender.get('/presence/get', (request) => {
      const names = new URL(
        (request as unknown as { url: string }).url,
        window.location.href,
      ).searchParams.getAll('channels[]');
      ctx.server.gets.push(names);
      if (down) return [502, {}, '<html>Bad Gateway</html>'];
      return [
        200,
        { 'Content-Type': 'application/json' },
        JSON.stringify({
          [ONLINE]: { users: [user(1)], count: 1, last_message_id: 3 },
        }),
      ];
    });
    const logged: string[] = [];
    const log = console.log;
    console.log = (line: string) => logged.push(line);
    try {
      const channel = ctx.presence().getChannel(ONLINE);
      let settledWith: string | undefined;
      const subscribed = channel.subscribe().then(
        () => (settledWith = 'resolved'),
        () => (settledWith = 'rejected'),
      );
      await settled();
      assert.strictEqual(ctx.server.gets.length, 1);
      assert.strictEqual(settledWith, undefined, 'still waiting, not rejected');
      assert.true(
        logged.some((l) => /failed with 502.*retrying every 5 s/.test(l)),
        logged.join('\n'),
      );

      ctx.clock.tick(4_999);
      await settled();
      assert.strictEqual(ctx.server.gets.length, 1, 'nothing before 5 s');
      ctx.clock.tick(1);
      await settled();
      assert.strictEqual(ctx.server.gets.length, 2, 'retried after 5 s');

      down = false;
      ctx.clock.tick(5_000);
      await subscribed;
      assert.strictEqual(settledWith, 'resolved');
      assert.strictEqual(channel.count, 1);
      assert.true(
        ctx.bus.isSubscribed(BUS_ONLINE),
        'follows the bus from then on',
      );
      assert.strictEqual(logged.length, 1, 'one log line, not one per retry');
    } finally {
      console.log = log;
    }
  });

  test('unsubscribing while the first GET waits to retry stops the retries', async function (assert) {
    ctx.server.pretender.get('/presence/get', (request) => {
      ctx.server.gets.push([(request as unknown as { url: string }).url]);
      return [503, {}, ''];
    });
    const log = console.log;
    console.log = () => undefined;
    try {
      const channel = ctx.presence().getChannel(ONLINE);
      const subscribed = channel.subscribe();
      await settled();
      channel.unsubscribe();
      await subscribed; // settles: nobody is left waiting for ever
      ctx.clock.tick(60_000);
      await settled();
      assert.strictEqual(ctx.server.gets.length, 1);
      assert.false(channel.subscribed);
    } finally {
      console.log = log;
    }
  });

  test('unsubscribing while the fetch is in flight leaves the handle unsubscribed', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    const subscribed = channel.subscribe();
    channel.unsubscribe();
    await subscribed;
    await settled();
    assert.false(channel.subscribed);
    assert.false(ctx.bus.isSubscribed(BUS_ONLINE));
  });

  test('a channel that disappears during a resync unsubscribes its handles with an error', async function (assert) {
    const channel = ctx.presence().getChannel(ONLINE);
    await channel.subscribe();
    ctx.server.states.delete(ONLINE);
    const original = console.log;
    console.log = () => undefined;
    try {
      ctx.bus.publish(BUS_ONLINE, 9, { leaving_user_ids: [1] });
      await settled();
    } finally {
      console.log = original;
    }
    assert.false(channel.subscribed);
    assert.true(channel.error instanceof PresenceChannelNotFound);
  });

  test('anonymous visitors may subscribe but not enter or leave', async function (assert) {
    const presence = ctx.presence();
    presence.setCurrentUser(null);
    assert.true(presence.isAnonymous);
    const channel = presence.getChannel(ONLINE);
    await channel.subscribe();
    assert.true(channel.subscribed);
    // Rejected promises, never a synchronous throw: `assert.rejects(channel.enter())` works.
    await assert.rejects(
      channel.enter(),
      /anonymous visitors cannot enter '\/site\/online'/,
    );
    await assert.rejects(channel.leave(), /anonymous visitors cannot leave/);
    await settled();
    assert.strictEqual(ctx.server.updates.length, 0);
  });
});

/** The lines `run` logs to the console, which shows none of them. */
async function logsDuring(run: () => Promise<void>): Promise<string[]> {
  const logged: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) =>
    void logged.push(args.map(String).join(' '));
  try {
    await run();
  } finally {
    console.log = original;
  }
  return logged;
}
