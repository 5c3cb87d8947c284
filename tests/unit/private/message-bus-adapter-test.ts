import { module, test } from 'qunit';
import { settled, waitUntil } from '@ember/test-helpers';
import Pretender from 'pretender';
import {
  MessageBus,
  createMessageBusAdapter,
} from 'ember-presence/-private/bus';

module('Unit | message-bus adapter', function (hooks) {
  let server: Pretender;
  let chunked: boolean;

  hooks.beforeEach(function () {
    chunked = MessageBus.enableChunkedEncoding;
  });

  hooks.afterEach(function () {
    MessageBus.enableChunkedEncoding = chunked;
    server.shutdown();
  });

  test('delivers messages of the real message-bus-client from the snapshot id on, and stops cleanly', async function (assert) {
    const polls: { url: string; body: URLSearchParams }[] = [];
    server = new Pretender(function () {
      this.post('/message-bus/:clientId/poll', (request) => {
        polls.push({
          url: (request as unknown as { url: string }).url,
          body: new URLSearchParams(request.requestBody),
        });
        if (polls.length === 1) {
          const messages = [
            {
              global_id: 10,
              message_id: 5,
              channel: '/presence/site/online',
              data: { leaving_user_ids: [1] },
            },
          ];
          return [
            200,
            { 'Content-Type': 'application/json; charset=utf-8' },
            JSON.stringify(messages),
          ];
        }
        // Later polls are parked, like a real long poll; stopping the bus aborts them.
        return new Promise(() => undefined);
      });
    });

    const bus = createMessageBusAdapter({
      baseUrl: '/',
      start: true,
      // Pretender's fake XHR does not stream; the chunked path is exercised against the real server.
      chunked: false,
      credentials: 'same-origin',
    });
    const received: [number, unknown][] = [];
    const unsubscribe = bus.subscribe(
      '/presence/site/online',
      (data, id) => received.push([id, data]),
      4,
    );
    await waitUntil(() => received.length === 1, { timeout: 5000 });

    assert.deepEqual(received, [[5, { leaving_user_ids: [1] }]]);
    assert.true(
      polls[0]?.url.startsWith(`/message-bus/${bus.clientId}/poll`),
      'polls with the client id',
    );
    assert.strictEqual(
      polls[0]?.body.get('/presence/site/online'),
      '4',
      'asks for messages after the snapshot',
    );

    // The second poll is parked on the "server" now; it must not hold settled() (no waiter around it).
    await waitUntil(() => polls.length === 2, { timeout: 5000 });
    await settled();

    unsubscribe();
    bus.destroy?.();
    assert.strictEqual(
      MessageBus.callbacks.length,
      0,
      'no callback left behind',
    );
    assert.strictEqual(MessageBus.status(), 'stopped');
  });

  test('under pretender, a poll aborted while held is followed by the next one (the transport completes on abort)', async function (assert) {
    const polls: URLSearchParams[] = [];
    server = new Pretender(function () {
      this.post('/message-bus/:clientId/poll', (request) => {
        polls.push(new URLSearchParams(request.requestBody));
        // Every poll is parked like a real long poll; subscribing another channel aborts it.
        return new Promise(() => undefined);
      });
    });
    const bus = createMessageBusAdapter({
      baseUrl: '/',
      start: true,
      // Pretender's fake XHR does not stream; the chunked path is exercised against the real server.
      chunked: false,
      credentials: 'same-origin',
    });
    const stopA = bus.subscribe('/presence/a', () => undefined, 1);
    await waitUntil(() => polls.length === 1, { timeout: 5000 });

    const stopB = bus.subscribe('/presence/b', () => undefined, 2);
    await waitUntil(() => polls.length === 2, {
      timeout: 5000,
      timeoutMessage: 'no poll followed the aborted one',
    });
    assert.strictEqual(polls[1]?.get('/presence/a'), '1');
    assert.strictEqual(polls[1]?.get('/presence/b'), '2');

    // And again: the bus keeps working after any number of aborts.
    stopB();
    const stopC = bus.subscribe('/presence/c', () => undefined, 3);
    await waitUntil(() => polls.some((p) => p.get('/presence/c') === '3'), {
      timeout: 5000,
      timeoutMessage: 'no poll followed the second abort',
    });
    assert.strictEqual(
      polls.at(-1)?.get('/presence/b'),
      null,
      'the unsubscribed channel is no longer polled',
    );

    stopA();
    stopC();
    bus.destroy?.();
    assert.strictEqual(MessageBus.status(), 'stopped');
  });
});
