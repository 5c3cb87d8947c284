import { module, test } from 'qunit';
import { FakeClock } from 'ember-presence/test-support';
import { FakePresenceServer } from 'ember-presence/test-support/-private/fake-server';

/**
 * `POST /message-bus/<clientId>/poll` on the test-support fake, through pretender: the same core poll
 * handler as the real router (server/test/poll-handler.test.ts), held and timed out on the fake clock.
 */
module('Unit | test-support | fake server polls', function (hooks) {
  let clock: FakeClock;
  let server: FakePresenceServer;

  hooks.beforeEach(function () {
    clock = new FakeClock();
    server = new FakePresenceServer(clock);
  });

  hooks.afterEach(async function () {
    await server.shutdown();
  });

  const poll = (
    clientId: string,
    fields: Record<string, string>,
    headers: Record<string, string> = { 'Dont-Chunk': 'true' },
  ): Promise<Response> =>
    fetch(`/message-bus/${clientId}/poll`, {
      method: 'POST',
      headers,
      body: new URLSearchParams(fields),
    });
  const data = async (response: Response): Promise<unknown[]> =>
    ((await response.json()) as Array<{ data: unknown }>).map((m) => m.data);

  test('a long poll is held until a message, replaced by a newer __seq, and times out on the fake clock', async function (assert) {
    const first = poll('c', { '/chat': '', __seq: '1' });
    await clock.advance(0);
    const second = poll('c', { '/chat': '', __seq: '2' });
    assert.deepEqual(await data(await first), [], 'replaced: answered []');
    await clock.advance(0);
    await server.bus.publish('/chat', 'hi');
    assert.deepEqual(await data(await second), ['hi'], 'the first message');

    const third = poll('c', { '/chat': '', __seq: '3' });
    await clock.advance(0); // held (its timer armed) before the clock moves
    await clock.advance(24_999);
    let done = false;
    void third.then(() => (done = true));
    await clock.advance(0);
    assert.false(done, 'still held a millisecond before 25 s');
    await clock.advance(1);
    const timedOut = await third;
    assert.deepEqual(await data(timedOut), [], '[] at 25 s');
    assert.strictEqual(
      timedOut.headers.get('cache-control'),
      'must-revalidate, private, max-age=0',
    );
  });

  test('a chunked poll answers with its chunks up to the first message', async function (assert) {
    const held = poll('c', { '/chat': '' }, {});
    await clock.advance(0);
    await server.bus.publish('/chat', 'hi');
    const text = await (await held).text();
    const chunks = text.split('\r\n|\r\n');
    assert.strictEqual(chunks.pop(), '', 'ends with a separator');
    assert.deepEqual(
      chunks.map((chunk) =>
        (JSON.parse(chunk) as Array<{ data: unknown }>).map((m) => m.data),
      ),
      [[], ['hi']],
    );
  });

  test('404 off the poll path, 405 with Allow for other methods', async function (assert) {
    const notFound = await fetch('/message-bus/c/other', { method: 'POST' });
    assert.strictEqual(notFound.status, 404);
    const wrong = await fetch('/message-bus/c/poll');
    assert.strictEqual(wrong.status, 405);
    assert.strictEqual(wrong.headers.get('allow'), 'POST, OPTIONS');
  });
});
