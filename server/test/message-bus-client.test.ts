import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import type { Request } from 'express';

import { MemoryStore } from '../src/core/memory-store.js';
import type { CurrentUser } from '../src/core/types.js';
import {
  loadMessageBusClient,
  type MessageBusClient,
} from './support/bus-client-harness.js';
import {
  startBusServer,
  until,
  type BusServer,
  IDLE_ROUTER_STATS,
} from './support/bus-http.js';
import { messageIds } from './support/message-ids.js';

/** What a subscription callback received. */
interface Received {
  data: unknown;
  globalId: number;
  messageId: number;
}

/** The server publishes on a clock stopped at T, so every backlog here is created at T. */
const T = 1_764_000_000_000;
const msgId = messageIds(T);

const ann: CurrentUser = {
  id: 1,
  username: 'ann',
  name: 'Ann',
  avatar_template: '/a/{size}.png',
  groupIds: [10],
};

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function setup(options: { longPollMs?: number } = {}): Promise<{
  server: BusServer;
  client: MessageBusClient;
  requests: ReturnType<typeof loadMessageBusClient>['requests'];
}> {
  const server = await startBusServer({
    store: new MemoryStore(),
    clock: () => T,
    longPollMs: options.longPollMs ?? 2000,
    // The client sends its own headers only; the hook sees them like it would see a session cookie.
    currentUser: (req: Request) =>
      req.headers['x-test-user'] === 'ann' ? ann : null,
  });
  cleanups.push(() => server.close());
  const { bus: client, requests } = loadMessageBusClient(server.origin);
  // A stopped client aborts its poll: nothing may keep the test process alive.
  cleanups.push(() => client.stop());
  return { server, client, requests };
}

/** Subscribes and collects what the callback receives (copied out of the client's vm realm). */
function follow(
  client: MessageBusClient,
  channel: string,
  lastId?: number,
): Received[] {
  const received: Received[] = [];
  client.subscribe(
    channel,
    (data, globalId, messageId) =>
      received.push({
        data: JSON.parse(JSON.stringify(data)) as unknown,
        globalId,
        messageId,
      }),
    lastId,
  );
  return received;
}

describe('the real message-bus-client against this server', () => {
  it('receives messages over chunked streaming', async () => {
    const { server, client, requests } = await setup();
    const received = follow(client, '/chat');
    // The first poll asks with -1 and learns the last id from the status entry; the stream then stays open.
    await until(
      () =>
        server.router.stats().streams === 1 &&
        server.router.stats().listeners === 1,
      'the client streams',
    );
    await server.router.bus.publish('/chat', { text: 'hello' });
    await until(() => received.length === 1, 'the client received the message');
    await server.router.bus.publish('/chat', { text: 'again' });
    await until(
      () => received.length === 2,
      'the client received the second message',
    );
    assert.deepEqual(
      received.map(({ data, messageId }) => [data, messageId]),
      [
        [{ text: 'hello' }, msgId(1)],
        [{ text: 'again' }, msgId(2)],
      ],
    );
    assert.ok(received[0]!.globalId > 0);
    assert.equal(client.callbacks[0]!.last_id, msgId(2));
    const first = requests[0]!;
    assert.match(
      first.url,
      /\/message-bus\/[0-9a-f]{32}\/poll$/,
      'a long poll, no ?dlp=t',
    );
    assert.equal(
      first.headers['Dont-Chunk'],
      undefined,
      'chunked: no Dont-Chunk header',
    );
    assert.equal(new URLSearchParams(first.body).get('/chat'), '-1');
    assert.equal(new URLSearchParams(first.body).get('__seq'), '1');
  });

  it('receives messages over plain long polling (Dont-Chunk)', async () => {
    const { server, client, requests } = await setup();
    client.enableChunkedEncoding = false;
    const received = follow(client, '/chat');
    await until(
      () =>
        server.router.stats().heldPolls === 1 &&
        server.router.stats().listeners === 1,
      'the client holds a long poll',
    );
    assert.equal(server.router.stats().streams, 0);
    await server.router.bus.publish('/chat', 'one');
    await until(() => received.length === 1, 'the client received the message');
    // The client polls again at once after data; the next message arrives through the new poll.
    await until(
      () =>
        server.router.stats().heldPolls === 1 &&
        server.router.stats().listeners === 1,
      'polling again',
    );
    await server.router.bus.publish('/chat', 'two');
    await until(
      () => received.length === 2,
      'the client received the second message',
    );
    assert.deepEqual(
      received.map(({ data, messageId }) => [data, messageId]),
      [
        ['one', msgId(1)],
        ['two', msgId(2)],
      ],
    );
    assert.ok(
      requests.every((request) => request.headers['Dont-Chunk'] === 'true'),
    );
    const seqs = requests.map((request) =>
      Number(new URLSearchParams(request.body).get('__seq')),
    );
    assert.deepEqual(
      seqs,
      seqs.map((_, index) => index + 1),
      '__seq counts the requests',
    );
  });

  it('replays the backlog when subscribing with an id, and skips messages outside its audience', async () => {
    const { server, client } = await setup();
    const bus = server.router.bus;
    await bus.publish('/chat', 'first');
    await bus.publish('/chat', 'for ann only', { userIds: [1] });
    await bus.publish('/chat', 'third');
    const received = follow(client, '/chat', 0);
    await until(() => received.length === 2, 'the backlog arrived');
    assert.deepEqual(
      received.map(({ data }) => data),
      ['first', 'third'],
    );
    await until(() => server.router.stats().listeners === 1, 'streaming');
    await bus.publish('/chat', 'secret', { userIds: [1] });
    await bus.publish('/chat', 'fifth');
    await until(
      () => received.length === 3,
      'the next visible message arrived',
    );
    assert.equal(received[2]!.data, 'fifth');
    assert.equal(
      client.callbacks[0]!.last_id,
      msgId(5),
      'the status entry moved the client past the filtered message',
    );
  });

  it('delivers user-restricted messages to the logged-in user', async () => {
    const { server, client } = await setup();
    client.headers = { 'X-Test-User': 'ann' };
    const received = follow(client, '/inbox');
    await until(() => server.router.stats().listeners === 1, 'streaming');
    await server.router.bus.publish('/inbox', 'for ann', { userIds: [1] });
    await until(() => received.length === 1, 'ann received her message');
    assert.equal(received[0]!.data, 'for ann');
  });

  for (const mode of ['long polling', 'chunked streaming'] as const) {
    it(`keeps receiving across ${mode} timeouts (each poll ends with [], the client polls again)`, async () => {
      const { server, client, requests } = await setup({ longPollMs: 150 });
      client.enableChunkedEncoding = mode === 'chunked streaming';
      // The client re-polls `callbackInterval` after an empty poll STARTED (15 s by default, under the
      // server's 25 s); scale it with the test's short server timeout.
      client.callbackInterval = 100;
      const received = follow(client, '/chat');
      await until(
        () => requests.length >= 3,
        'several polls ran out their timeout',
      );
      await until(() => server.router.stats().listeners === 1, 'held again');
      await server.router.bus.publish('/chat', 'late');
      await until(() => received.length === 1, 'received after timeouts');
      assert.equal(received[0]!.data, 'late');
      assert.equal(server.router.stats().streams <= 1, true);
    });
  }

  it('stopping the client aborts its poll and the server releases everything', async () => {
    const { server, client } = await setup({ longPollMs: 60_000 });
    follow(client, '/chat');
    await until(() => server.router.stats().listeners === 1, 'streaming');
    client.stop();
    await until(() => server.router.stats().heldPolls === 0, 'released');
    assert.deepEqual(server.router.stats(), IDLE_ROUTER_STATS);
  });
});
