import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';

import express, { type Request } from 'express';

import { HttpError } from '../src/core/errors.js';
import type { Logger } from '../src/core/logger.js';
import { MemoryStore } from '../src/core/memory-store.js';
import {
  MessageBus,
  statusMessage,
  type WireMessage,
} from '../src/core/message-bus/index.js';
import type { PresenceStore } from '../src/core/store.js';
import type { Timers } from '../src/core/timers.js';
import type { CurrentUser } from '../src/core/types.js';
import {
  messageBusRouter,
  type MessageBusRouterOptions,
} from '../src/message-bus/router.js';
import {
  openPoll,
  poll,
  startBusServer,
  until,
  type BusServer,
  IDLE_ROUTER_STATS,
} from './support/bus-http.js';
import { messageIds } from './support/message-ids.js';

const T = 1_764_000_000_000;
/** The ids of a backlog created at T: every bus here publishes on a clock stopped at T. */
const msgId = messageIds(T);
/** `ids()` of a status entry. */
const status = (lastIds: Record<string, number>): string =>
  `status:${JSON.stringify(lastIds)}`;
const NO_CACHE = {
  'cache-control': 'must-revalidate, private, max-age=0',
  pragma: 'no-cache',
  expires: '0',
};
const JSON_TYPE = 'application/json; charset=utf-8';
const STREAM_TYPE = 'text/plain; charset=utf-8';

const USERS: Record<string, CurrentUser> = {
  ann: {
    id: 1,
    username: 'ann',
    name: 'Ann',
    avatar_template: '/a/{size}.png',
    groupIds: [10],
  },
  bob: {
    id: 2,
    username: 'bob',
    name: 'Bob',
    avatar_template: '/b/{size}.png',
    groupIds: [20],
  },
};

/** The test's auth hook: `X-Test-User: ann` logs in as ann (async, like a real session lookup). */
const currentUser = (req: Request): Promise<CurrentUser | null> =>
  Promise.resolve(USERS[String(req.headers['x-test-user'])] ?? null);
const as = (name: string): Record<string, string> => ({ 'X-Test-User': name });

class CapturingLogger implements Logger {
  readonly messages: string[] = [];
  error(message: string): void {
    this.messages.push(message);
  }
}

let servers: BusServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

/** A server on a fresh MemoryStore; `messages` are published on `/chat` first (data = their number). */
async function serve(
  options: Partial<MessageBusRouterOptions> = {},
  messages = 0,
): Promise<{
  origin: string;
  bus: MessageBus;
  server: BusServer;
  logger: CapturingLogger;
}> {
  const logger = new CapturingLogger();
  const store = new MemoryStore();
  const server = await startBusServer({
    store,
    clock: () => T,
    currentUser,
    longPollMs: 5000,
    logger,
    ...options,
  });
  servers.push(server);
  const bus = server.router.bus;
  for (let n = 1; n <= messages; n += 1) await bus.publish('/chat', n);
  return { origin: server.origin, bus, server, logger };
}

function ids(messages: unknown): Array<number | string> {
  return (messages as WireMessage[]).map((m) =>
    m.channel === '/__status'
      ? `status:${JSON.stringify(m.data)}`
      : m.message_id,
  );
}

function assertNoCache(headers: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(NO_CACHE))
    assert.equal(headers[name], value, name);
}

describe('message-bus router: immediate answers (?dlp=t)', () => {
  it('answers [] at once when there is nothing, with the no-cache headers and a JSON type', async () => {
    const { origin } = await serve({}, 3);
    const res = await poll(origin, {
      dlp: true,
      body: { '/chat': msgId(3), __seq: 1 },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, []);
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assertNoCache(res.headers);
  });

  it('empty id: nothing (from now)', async () => {
    const { origin } = await serve({}, 3);
    assert.deepEqual(
      (await poll(origin, { dlp: true, body: { '/chat': null } })).body,
      [],
    );
  });

  it('-1: a status entry with the current last id', async () => {
    const { origin } = await serve({}, 3);
    assert.deepEqual(
      (await poll(origin, { dlp: true, body: { '/chat': -1 } })).body,
      [statusMessage({ '/chat': msgId(3) })],
    );
  });

  it('-N: the last N-1 messages in wire shape', async () => {
    const { origin } = await serve({}, 5);
    const { body } = await poll(origin, { dlp: true, body: { '/chat': -3 } });
    assert.deepEqual(ids(body), [4, 5].map(msgId));
    const first = (body as WireMessage[])[0]!;
    assert.deepEqual(Object.keys(first).sort(), [
      'channel',
      'data',
      'global_id',
      'message_id',
    ]);
    assert.deepEqual(
      { ...first, global_id: 0 },
      { global_id: 0, message_id: msgId(4), channel: '/chat', data: 4 },
    );
  });

  it('0: the whole backlog', async () => {
    const { origin } = await serve({}, 3);
    assert.deepEqual(
      ids((await poll(origin, { dlp: true, body: { '/chat': 0 } })).body),
      [1, 2, 3].map(msgId),
    );
  });

  it('k: messages after k', async () => {
    const { origin } = await serve({}, 4);
    assert.deepEqual(
      ids(
        (await poll(origin, { dlp: true, body: { '/chat': msgId(2) } })).body,
      ),
      [3, 4].map(msgId),
    );
  });

  it('beyond the last id: a status entry, as for -1', async () => {
    const { origin } = await serve({}, 2);
    assert.deepEqual(
      (await poll(origin, { dlp: true, body: { '/chat': msgId(99) } })).body,
      [statusMessage({ '/chat': msgId(2) })],
    );
  });

  it('reads JSON bodies with number ids as well as form bodies', async () => {
    const { origin } = await serve({}, 3);
    const res = await poll(origin, {
      dlp: true,
      json: true,
      body: { '/chat': msgId(1), __seq: 4 },
    });
    assert.deepEqual(ids(res.body), [2, 3].map(msgId));
  });

  it('ignores anything after /poll', async () => {
    const { origin } = await serve({}, 1);
    const res = await poll(origin, {
      path: '/message-bus/abc/poll/extra/segments?dlp=t&x=1',
      body: { '/chat': 0 },
    });
    assert.deepEqual(ids(res.body), [msgId(1)]);
  });

  it('answers a poll of no channels at once with []', async () => {
    const { origin } = await serve();
    const res = await poll(origin, { body: { __seq: 1 } });
    assert.deepEqual(res.body, []);
  });

  it('works behind the host app’s own JSON and form body parsers', async () => {
    const store = new MemoryStore();
    const bus = new MessageBus({ store, clock: () => T });
    await bus.publish('/chat', 1);
    const server = await startBusServer({ bus, currentUser }, (app) => {
      app.use(express.json());
      app.use(express.urlencoded({ extended: false }));
      app.use(express.text());
    });
    servers.push(server);
    assert.deepEqual(
      ids(
        (await poll(server.origin, { dlp: true, body: { '/chat': 0 } })).body,
      ),
      [msgId(1)],
    );
    assert.deepEqual(
      ids(
        (
          await poll(server.origin, {
            dlp: true,
            json: true,
            body: { '/chat': 0 },
          })
        ).body,
      ),
      [msgId(1)],
    );
    const text = await poll(server.origin, {
      dlp: true,
      raw: '{"/chat":0}',
      headers: { 'Content-Type': 'text/plain' },
    });
    assert.deepEqual(ids(text.body), [msgId(1)]);
  });
});

describe('message-bus router: bad requests', () => {
  it('400 JSON for a garbage body, with the no-cache headers', async () => {
    const { origin } = await serve();
    const res = await poll(origin, {
      raw: '{"/chat":',
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assert.deepEqual(res.body, {
      errors: ['The poll body is not valid JSON.'],
      error_type: 'invalid_parameters',
    });
    assertNoCache(res.headers);
  });

  it('400 for an id that is not an integer, naming the channel', async () => {
    const { origin } = await serve();
    const res = await poll(origin, { body: { '/chat': 'soon' } });
    assert.equal(res.status, 400);
    assert.match(
      (res.body as { errors: string[] }).errors[0]!,
      /"\/chat" must be an integer/,
    );
  });

  it('400 for a JSON body that is not an object, and for a bad __seq', async () => {
    const { origin } = await serve();
    assert.equal(
      (
        await poll(origin, {
          raw: '[1]',
          headers: { 'Content-Type': 'application/json' },
        })
      ).status,
      400,
    );
    assert.equal(
      (await poll(origin, { body: { __seq: 'x', '/chat': 1 } })).status,
      400,
    );
  });

  it('400 for too many channels', async () => {
    const { origin } = await serve({ maxChannelsPerPoll: 2 });
    const res = await poll(origin, { body: { '/a': 1, '/b': 1, '/c': 1 } });
    assert.equal(res.status, 400);
    assert.match(
      (res.body as { errors: string[] }).errors[0]!,
      /at most 2 channels/,
    );
  });

  it('413 for an oversized body', async () => {
    const { origin } = await serve({ maxBodyBytes: 100 });
    const res = await poll(origin, { raw: `%2Fchat=1&x=${'a'.repeat(200)}` });
    assert.equal(res.status, 413);
    assert.equal(
      (res.body as { error_type: string }).error_type,
      'payload_too_large',
    );
  });

  it('415 for a compressed body', async () => {
    const { origin } = await serve();
    const res = await poll(origin, {
      raw: 'xx',
      headers: { 'Content-Encoding': 'gzip' },
    });
    assert.equal(res.status, 415);
  });

  it('404 JSON without a client id, or for any other path under /message-bus', async () => {
    const { origin } = await serve();
    for (const path of [
      '/message-bus//poll',
      '/message-bus/poll',
      '/message-bus',
      '/message-bus/abc',
      '/message-bus/abc/pollx',
    ]) {
      const res = await poll(origin, { path, body: { '/chat': 1 } });
      assert.equal(res.status, 404, path);
      assert.equal(
        (res.body as { error_type: string }).error_type,
        'not_found',
        path,
      );
      assertNoCache(res.headers);
    }
  });

  it('400 for a client id longer than 64 characters', async () => {
    const { origin } = await serve();
    const res = await poll(origin, {
      clientId: 'x'.repeat(65),
      body: { '/chat': 1 },
    });
    assert.equal(res.status, 400);
  });

  it('405 with Allow for other methods', async () => {
    const { origin } = await serve();
    const res = await poll(origin, { method: 'GET' });
    assert.equal(res.status, 405);
    assert.equal(res.headers['allow'], 'POST, OPTIONS');
  });

  it('a currentUser hook that throws an HttpError answers with its status', async () => {
    const { origin } = await serve({
      currentUser: () => {
        throw new HttpError(401, 'invalid_token', 'The session token expired.');
      },
    });
    const res = await poll(origin, { body: { '/chat': 1 } });
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, {
      errors: ['The session token expired.'],
      error_type: 'invalid_token',
    });
  });

  it('a broken currentUser hook is a logged 500 JSON, not a crash', async () => {
    const { origin, logger } = await serve({
      currentUser: () => ({ id: 'x' }) as unknown as CurrentUser,
    });
    const res = await poll(origin, { body: { '/chat': 1 } });
    assert.equal(res.status, 500);
    assert.deepEqual(res.body, {
      errors: ['An internal error occurred.'],
      error_type: 'server_error',
    });
    assert.deepEqual(logger.messages, ['message bus: poll failed']);
  });

  it('503 JSON when the store is down', async () => {
    const store = new MemoryStore();
    await store.close();
    const logger = new CapturingLogger();
    const server = await startBusServer({ store, logger });
    servers.push(server);
    const res = await poll(server.origin, { dlp: true, body: { '/chat': 1 } });
    assert.equal(res.status, 503);
    assert.equal(
      (res.body as { error_type: string }).error_type,
      'service_unavailable',
    );
    assert.deepEqual(logger.messages, ['message bus: answering a poll failed']);
  });

  it('503 JSON when the canFollow hook fails (e.g. the config store is down)', async () => {
    const { origin, logger } = await serve({
      canFollow: () => Promise.reject(new Error('redis down')),
    });
    const res = await poll(origin, { body: { '/presence/site/online': -1 } });
    assert.equal(res.status, 503);
    assert.equal(
      (res.body as { error_type: string }).error_type,
      'service_unavailable',
    );
    assert.deepEqual(logger.messages, ['message bus: answering a poll failed']);
  });

  it('rejects bad options with a TypeError naming the option', () => {
    assert.throws(() => messageBusRouter({}), /one of them is required/);
    const bus = new MessageBus({ store: new MemoryStore() });
    assert.throws(
      () => messageBusRouter({ bus, canFollow: () => true }),
      /pass canFollow to new MessageBus/,
    );
    assert.throws(
      () => messageBusRouter({ store: new MemoryStore(), longPollMs: 0 }),
      /longPollMs must be a positive integer/,
    );
    assert.throws(
      () => messageBusRouter({ store: new MemoryStore(), maxHeldPolls: -1 }),
      /maxHeldPolls/,
    );
    for (const option of [
      'maxFollowedChannelsPerPeer',
      'maxStreamBufferBytes',
      'streamDrainTimeoutMs',
    ]) {
      assert.throws(
        () => messageBusRouter({ store: new MemoryStore(), [option]: -1 }),
        new RegExp(`messageBusRouter: ${option} must be a`),
      );
    }
  });
});

describe('message-bus router: OPTIONS', () => {
  it('answers a same-origin preflight with 204 and Allow, granting nothing cross-origin by default', async () => {
    const { origin } = await serve();
    const res = await poll(origin, {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers['allow'], 'POST, OPTIONS');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });

  it('grants CORS with credentials to allowedOrigins only', async () => {
    const { origin } = await serve({ allowedOrigins: ['https://app.example'] });
    const ok = await poll(origin, {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example' },
    });
    assert.equal(
      ok.headers['access-control-allow-origin'],
      'https://app.example',
    );
    assert.equal(ok.headers['access-control-allow-credentials'], 'true');
    assert.match(
      String(ok.headers['access-control-allow-headers']),
      /Dont-Chunk/,
    );
    assert.equal(ok.headers['vary'], 'Origin');
    const other = await poll(origin, {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example' },
    });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const post = await poll(origin, {
      dlp: true,
      body: { '/chat': 0 },
      headers: { Origin: 'https://app.example' },
    });
    assert.equal(
      post.headers['access-control-allow-origin'],
      'https://app.example',
    );
  });
});

describe('message-bus router: long polling (Dont-Chunk: true)', () => {
  it('answers at once when the backlog has something', async () => {
    const { origin, server } = await serve({}, 2);
    const res = await poll(origin, {
      dontChunk: true,
      body: { '/chat': msgId(1) },
    });
    assert.deepEqual(ids(res.body), [msgId(2)]);
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assert.equal(server.router.stats().heldPolls, 0);
  });

  it('answers a -1 at once with its status entry', async () => {
    const { origin } = await serve({}, 2);
    assert.deepEqual(
      (await poll(origin, { dontChunk: true, body: { '/chat': -1 } })).body,
      [statusMessage({ '/chat': msgId(2) })],
    );
  });

  it('holds an empty poll and answers with the first message that arrives', async () => {
    const { origin, bus, server } = await serve({}, 2);
    const open = openPoll(origin, {
      dontChunk: true,
      body: { '/chat': msgId(2), __seq: 1 },
    });
    await until(
      () =>
        server.router.stats().heldPolls === 1 &&
        server.router.stats().listeners === 1,
      'the poll is held',
    );
    assert.equal(open.ended(), false);
    await bus.publish('/chat', 'hello');
    const { status, headers } = await open.response;
    assert.equal(status, 200);
    assert.equal(headers['content-type'], JSON_TYPE);
    assertNoCache(headers);
    const body = JSON.parse(await open.body) as WireMessage[];
    assert.deepEqual(
      body.map((m) => [m.message_id, m.data]),
      [[msgId(3), 'hello']],
    );
    await until(
      () => server.router.stats().heldPolls === 0,
      'the poll is released',
    );
    assert.deepEqual(server.router.stats(), IDLE_ROUTER_STATS);
  });

  it('an empty id waits for the next message', async () => {
    const { origin, bus, server } = await serve({}, 2);
    const open = openPoll(origin, { dontChunk: true, body: { '/chat': null } });
    await until(
      () => server.router.stats().listeners === 1,
      'the poll is held',
    );
    await bus.publish('/chat', 'next');
    assert.deepEqual(ids(JSON.parse(await open.body)), [msgId(3)]);
  });

  it('answers [] when nothing arrives before longPollMs', async () => {
    const { origin, server } = await serve({ longPollMs: 30 }, 1);
    const res = await poll(origin, {
      dontChunk: true,
      body: { '/chat': msgId(1) },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, []);
    assertNoCache(res.headers);
    assert.equal(server.router.stats().timers, 0);
  });

  it('wakes on any of several channels', async () => {
    const { origin, bus, server } = await serve();
    const open = openPoll(origin, {
      dontChunk: true,
      body: { '/a': 0, '/b': 0, '/c': null },
    });
    await until(
      () => server.router.stats().listeners === 3,
      'the poll is held',
    );
    await bus.publish('/b', 'on b');
    const body = JSON.parse(await open.body) as WireMessage[];
    assert.deepEqual(
      body.map((m) => [m.channel, m.message_id]),
      [['/b', msgId(1)]],
    );
  });
  it('answers a held long poll in one piece: Content-Length, not chunked, with the no-cache headers', async () => {
    const { origin, bus, server } = await serve();
    const open = openPoll(origin, { dontChunk: true, body: { '/a': 0 } });
    await until(
      () => server.router.stats().listeners === 1,
      'the poll is held',
    );
    await bus.publish('/a', 'hello');
    const { status, headers } = await open.response;
    const body = await open.body;
    assert.equal(status, 200);
    assert.equal(headers['transfer-encoding'], undefined);
    assert.equal(headers['content-length'], String(Buffer.byteLength(body)));
    assert.equal(headers['content-type'], JSON_TYPE);
    assertNoCache(headers);
    assert.equal((JSON.parse(body) as WireMessage[])[0]!.data, 'hello');
  });
});

describe('message-bus router: chunked streaming', () => {
  it('streams an initial [], each message as it arrives, and a final [] at the timeout', async () => {
    const { origin, bus, server } = await serve({ longPollMs: 300 }, 1);
    const open = openPoll(origin, { body: { '/chat': msgId(1), __seq: 1 } });
    const { status, headers } = await open.response;
    assert.equal(status, 200);
    assert.equal(headers['content-type'], STREAM_TYPE);
    assert.equal(headers['transfer-encoding'], 'chunked');
    assert.equal(
      headers['x-content-type-options'],
      'nosniff',
      'or browsers buffer the stream to sniff it',
    );
    assert.equal(
      headers['x-accel-buffering'],
      'no',
      'or nginx buffers the stream',
    );
    assertNoCache(headers);
    assert.deepEqual(await open.nextChunk(), []);
    await until(
      () => server.router.stats().listeners === 1,
      'the stream follows /chat',
    );
    assert.equal(server.router.stats().streams, 1);
    await bus.publish('/chat', 'two');
    assert.deepEqual(ids(await open.nextChunk()), [msgId(2)]);
    await bus.publish('/chat', 'three');
    await bus.publish('/chat', 'four');
    const later = [
      ...(await open.nextChunk()),
      ...(open.received().endsWith('[]\r\n|\r\n')
        ? []
        : await open.nextChunk()),
    ];
    assert.deepEqual(ids(later), [3, 4].map(msgId));
    const text = await open.body;
    assert.ok(text.endsWith('[]\r\n|\r\n'), 'a final [] chunk');
    assert.match(
      text,
      new RegExp(
        String.raw`^\[\]\r\n\|\r\n\[\{"global_id":\d+,"message_id":${msgId(2)},"channel":"\/chat","data":"two"\}\]\r\n\|\r\n`,
      ),
    );
    await until(() => server.router.stats().heldPolls === 0, 'released');
    assert.equal(server.router.stats().timers, 0);
  });

  it('sends what the backlog has as the first chunk (no initial []) and keeps streaming', async () => {
    const { origin, bus, server } = await serve({ longPollMs: 2000 }, 3);
    const open = openPoll(origin, { body: { '/chat': msgId(1) } });
    assert.deepEqual(ids(await open.nextChunk()), [2, 3].map(msgId));
    await until(() => server.router.stats().listeners === 1, 'still held');
    await bus.publish('/chat', 4);
    assert.deepEqual(ids(await open.nextChunk()), [msgId(4)]);
    open.abort();
  });

  it('sends a -1 status entry as the first chunk', async () => {
    const { origin } = await serve({ longPollMs: 20 }, 3);
    const open = openPoll(origin, { body: { '/chat': -1 } });
    assert.deepEqual(await open.nextChunk(), [
      statusMessage({ '/chat': msgId(3) }),
    ]);
    assert.deepEqual(await open.nextChunk(), []);
    assert.equal(
      await open.body,
      `${JSON.stringify([statusMessage({ '/chat': msgId(3) })])}\r\n|\r\n[]\r\n|\r\n`,
    );
  });

  it('the separator never appears inside a chunk, whatever the data', async () => {
    const { origin, bus, server } = await serve({ longPollMs: 2000 });
    const open = openPoll(origin, { body: { '/chat': 0 } });
    assert.deepEqual(await open.nextChunk(), []);
    await until(() => server.router.stats().listeners === 1, 'held');
    await bus.publish('/chat', 'evil\r\n|\r\npayload');
    const [message] = await open.nextChunk();
    assert.equal(message!.data, 'evil\r\n|\r\npayload');
    open.abort();
  });

  it('?dlp=t never streams, even without Dont-Chunk', async () => {
    const { origin } = await serve({}, 1);
    const res = await poll(origin, { dlp: true, body: { '/chat': 0 } });
    assert.equal(res.headers['content-type'], JSON_TYPE);
    assert.deepEqual(ids(res.body), [msgId(1)]);
  });
});

describe('message-bus router: audience filtering over HTTP', () => {
  async function publishAll(bus: MessageBus): Promise<void> {
    await bus.publish('/chat', 'everyone'); // 1
    await bus.publish('/chat', 'ann', { userIds: [1] }); // 2
    await bus.publish('/chat', 'group 20', { groupIds: [20] }); // 3
    await bus.publish('/chat', 'ann or group 20', {
      userIds: [1],
      groupIds: [20],
    }); // 4
    await bus.publish('/chat', 'tab-x only', { clientIds: ['tab-x'] }); // 5
    await bus.publish('/chat', 'tab-x and ann', {
      clientIds: ['tab-x'],
      userIds: [1],
    }); // 6
  }

  /** Requester, its user and tab, and the numbers of the messages it receives (then a status entry). */
  const expected: Array<[string, string | null, string, number[]]> = [
    ['anonymous on another tab', null, 'tab-y', [1]],
    ['anonymous on tab-x', null, 'tab-x', [1, 5]],
    ['ann on another tab', 'ann', 'tab-y', [1, 2, 4]],
    ['ann on tab-x', 'ann', 'tab-x', [1, 2, 4, 5, 6]],
    ['bob on another tab', 'bob', 'tab-y', [1, 3, 4]],
    ['bob on tab-x', 'bob', 'tab-x', [1, 3, 4, 5]],
  ];
  for (const [name, user, clientId, want] of expected) {
    it(`${name} receives exactly its messages`, async () => {
      const { origin, bus } = await serve();
      await publishAll(bus);
      const res = await poll(origin, {
        dlp: true,
        clientId,
        body: { '/chat': 0 },
        headers: user ? as(user) : {},
      });
      assert.deepEqual(ids(res.body), [
        ...want.map(msgId),
        status({ '/chat': msgId(6) }),
      ]);
      assert.ok(
        !/user_ids|group_ids|client_ids/.test(res.text),
        'no audience on the wire',
      );
    });
  }

  it('a held long poll is not woken by a message it may not see; the timeout carries a status entry', async () => {
    const { origin, bus, server } = await serve({ longPollMs: 200 });
    const annPoll = openPoll(origin, {
      clientId: 'tab-ann',
      dontChunk: true,
      body: { '/chat': 0 },
      headers: as('ann'),
    });
    const bobPoll = openPoll(origin, {
      clientId: 'tab-bob',
      dontChunk: true,
      body: { '/chat': 0 },
      headers: as('bob'),
    });
    await until(() => server.router.stats().listeners === 2, 'both held');
    await bus.publish('/chat', 'for ann', { userIds: [1] });
    assert.deepEqual(ids(JSON.parse(await annPoll.body)), [msgId(1)]);
    assert.equal(bobPoll.ended(), false, 'bob is still waiting');
    assert.deepEqual(JSON.parse(await bobPoll.body), [
      statusMessage({ '/chat': msgId(1) }),
    ]);
  });

  it('a stream skips messages it may not see and reports them with the next chunk', async () => {
    const { origin, bus, server } = await serve({ longPollMs: 2000 });
    const stream = openPoll(origin, {
      clientId: 'tab-bob',
      body: { '/a': 0, '/b': 0 },
      headers: as('bob'),
    });
    assert.deepEqual(await stream.nextChunk(), []);
    await until(() => server.router.stats().listeners === 2, 'held');
    await bus.publish('/a', 'for ann', { userIds: [1] });
    await bus.publish('/b', 'for everyone');
    assert.deepEqual(ids(await stream.nextChunk()), [
      msgId(1),
      status({ '/a': msgId(1) }),
    ]);
    stream.abort();
  });

  it('a stream that only saw filtered messages reports them before its final [] chunk', async () => {
    const { origin, bus, server } = await serve({ longPollMs: 200 });
    const stream = openPoll(origin, {
      clientId: 'tab-bob',
      body: { '/chat': 0 },
      headers: as('bob'),
    });
    assert.deepEqual(await stream.nextChunk(), []);
    await until(() => server.router.stats().listeners === 1, 'held');
    await bus.publish('/chat', 'for ann', { userIds: [1] });
    assert.equal(
      await stream.body,
      `[]\r\n|\r\n${JSON.stringify([statusMessage({ '/chat': msgId(1) })])}\r\n|\r\n[]\r\n|\r\n`,
    );
  });

  it('canFollow makes a forbidden channel look like an unknown one', async () => {
    const { origin, bus } = await serve({
      canFollow: (channel) => channel !== '/secret',
    });
    await bus.publish('/secret', 1);
    await bus.publish('/secret', 2);
    const secret = await poll(origin, { dlp: true, body: { '/secret': -1 } });
    const unknown = await poll(origin, { dlp: true, body: { '/nothing': -1 } });
    assert.deepEqual(secret.body, [statusMessage({ '/secret': 0 })]);
    assert.deepEqual(unknown.body, [statusMessage({ '/nothing': 0 })]);
  });
});

describe('message-bus router: held polls per client', () => {
  it('a newer poll from the same client replaces the held one, which is answered []', async () => {
    const { origin, server } = await serve();
    const older = openPoll(origin, {
      clientId: 'tab',
      dontChunk: true,
      body: { '/chat': 0, __seq: 5 },
    });
    await until(() => server.router.stats().heldPolls === 1, 'held');
    const newer = openPoll(origin, {
      clientId: 'tab',
      dontChunk: true,
      body: { '/chat': 0, __seq: 6 },
    });
    assert.equal(await older.body, '[]');
    await until(
      () =>
        server.router.stats().heldPolls === 1 &&
        server.router.stats().listeners === 1,
      'newer held',
    );
    assert.equal(newer.ended(), false);
    newer.abort();
  });

  it('a replaced stream ends with its final [] chunk', async () => {
    const { origin, server } = await serve();
    const older = openPoll(origin, {
      clientId: 'tab',
      body: { '/chat': 0, __seq: 1 },
    });
    assert.deepEqual(await older.nextChunk(), []);
    openPoll(origin, {
      clientId: 'tab',
      dontChunk: true,
      body: { '/chat': 0, __seq: 2 },
    });
    assert.equal(await older.body, '[]\r\n|\r\n[]\r\n|\r\n');
    await until(
      () => server.router.stats().streams === 0,
      'the stream is gone',
    );
  });

  it('an older poll (lower __seq) does not replace a newer held one: it is answered [] at once', async () => {
    const { origin, server } = await serve();
    const newer = openPoll(origin, {
      clientId: 'tab',
      dontChunk: true,
      body: { '/chat': 0, __seq: 9 },
    });
    await until(() => server.router.stats().heldPolls === 1, 'held');
    const stale = await poll(origin, {
      clientId: 'tab',
      dontChunk: true,
      body: { '/chat': 0, __seq: 8 },
    });
    assert.deepEqual(stale.body, []);
    assert.equal(server.router.stats().heldPolls, 1);
    assert.equal(newer.ended(), false);
    newer.abort();
  });

  it('polls of different clients are held side by side', async () => {
    const { origin, server, bus } = await serve();
    const a = openPoll(origin, {
      clientId: 'tab-a',
      dontChunk: true,
      body: { '/chat': 0 },
    });
    const b = openPoll(origin, {
      clientId: 'tab-b',
      dontChunk: true,
      body: { '/chat': 0 },
    });
    await until(() => server.router.stats().heldPolls === 2, 'both held');
    assert.equal(
      server.router.stats().subscribedChannels,
      1,
      'one store subscription for both',
    );
    await bus.publish('/chat', 'x');
    assert.deepEqual(ids(JSON.parse(await a.body)), [msgId(1)]);
    assert.deepEqual(ids(JSON.parse(await b.body)), [msgId(1)]);
  });

  it('past maxHeldPolls, polls are answered at once as plain JSON polling', async () => {
    const { origin, server } = await serve({ maxHeldPolls: 2 }, 1);
    const held = [1, 2].map((n) =>
      openPoll(origin, { clientId: `tab-${n}`, body: { '/chat': msgId(1) } }),
    );
    await until(() => server.router.stats().heldPolls === 2, 'two held');
    const third = await poll(origin, {
      clientId: 'tab-3',
      body: { '/chat': msgId(1) },
    });
    assert.equal(third.status, 200);
    assert.equal(
      third.headers['content-type'],
      JSON_TYPE,
      'the client switches to non-chunked handling',
    );
    assert.deepEqual(third.body, []);
    const withBacklog = await poll(origin, {
      clientId: 'tab-4',
      body: { '/chat': 0 },
    });
    assert.deepEqual(ids(withBacklog.body), [msgId(1)]);
    assert.equal(server.router.stats().heldPolls, 2);
    // The client already holding a poll may still replace it.
    const replacing = openPoll(origin, {
      clientId: 'tab-1',
      body: { '/chat': msgId(1), __seq: 2 },
    });
    assert.equal(await held[0]!.body, '[]\r\n|\r\n[]\r\n|\r\n');
    assert.deepEqual(await replacing.nextChunk(), []);
    for (const open of [...held, replacing]) open.abort();
  });
});

describe('message-bus router: held polls per peer', () => {
  it('one anonymous address holds at most maxHeldPollsPerPeer polls; its others are answered at once, and other peers still get held polls', async () => {
    const { origin, server } = await serve(
      { maxHeldPolls: 100, maxHeldPollsPerPeer: 3 },
      1,
    );
    const mine = [1, 2, 3].map((n) =>
      openPoll(origin, { clientId: `anon-${n}`, body: { '/chat': msgId(1) } }),
    );
    await until(() => server.router.stats().heldPolls === 3, 'three held');
    const fourth = await poll(origin, {
      clientId: 'anon-4',
      body: { '/chat': msgId(1) },
    });
    assert.equal(fourth.status, 200);
    assert.equal(fourth.headers['content-type'], JSON_TYPE, 'answered at once');
    assert.deepEqual(fourth.body, []);
    assert.equal(server.router.stats().heldPolls, 3);

    // A signed-in user from the same address is another peer: held.
    const signedIn = openPoll(origin, {
      clientId: 'user-tab',
      headers: as('ann'),
      body: { '/chat': msgId(1) },
    });
    await until(
      () => server.router.stats().heldPolls === 4,
      'the user is held',
    );

    // Releasing one of the address's polls frees a slot for it again.
    mine[0]!.abort();
    await until(() => server.router.stats().heldPolls === 3, 'released');
    const again = openPoll(origin, {
      clientId: 'anon-5',
      body: { '/chat': msgId(1) },
    });
    await until(() => server.router.stats().heldPolls === 4, 'held again');
    for (const open of [...mine, signedIn, again]) open.abort();
  });
});

describe('message-bus router: who a peer is, over HTTP', () => {
  it('anonymous polls forwarded from one IPv6 /64 share one peer’s caps (trust proxy)', async () => {
    const server = await startBusServer(
      {
        store: new MemoryStore(),
        clock: () => T,
        longPollMs: 5000,
        maxHeldPollsPerPeer: 1,
      },
      (app) => app.set('trust proxy', 'loopback'),
    );
    servers.push(server);
    const from = (address: string): Record<string, string> => ({
      'X-Forwarded-For': address,
    });
    const held = openPoll(server.origin, {
      clientId: 'a',
      headers: from('2001:db8:5:6::1'),
      body: { '/chat': null },
    });
    await until(() => server.router.stats().heldPolls === 1, 'held');
    const sameNet = await poll(server.origin, {
      clientId: 'b',
      headers: from('2001:db8:5:6:9999::2'),
      body: { '/chat': null },
    });
    assert.equal(
      sameNet.headers['content-type'],
      JSON_TYPE,
      'answered at once',
    );
    const otherNet = openPoll(server.origin, {
      clientId: 'c',
      headers: from('2001:db8:5:7::1'),
      body: { '/chat': null },
    });
    await until(
      () => server.router.stats().heldPolls === 2,
      'the next /64 is held',
    );
    for (const open of [held, otherNet]) open.abort();
  });
});

describe('message-bus router: channels followed per peer', () => {
  it('a poll past maxFollowedChannelsPerPeer is answered at once as plain JSON; other peers still hold', async () => {
    const { origin, server } = await serve({ maxFollowedChannelsPerPeer: 4 });
    const made = (prefix: string): Record<string, null> =>
      Object.fromEntries([1, 2, 3].map((n) => [`/${prefix}/${n}`, null]));
    const held = openPoll(origin, { clientId: 'a', body: made('made-up') });
    await until(() => server.router.stats().listeners === 3, 'held');
    const over = await poll(origin, { clientId: 'b', body: made('invented') });
    assert.equal(over.status, 200);
    assert.equal(over.headers['content-type'], JSON_TYPE);
    assert.deepEqual(over.body, []);
    assert.equal(server.router.stats().subscribedChannels, 3);
    const user = openPoll(origin, {
      clientId: 'c',
      headers: as('ann'),
      body: made('invented'),
    });
    await until(
      () => server.router.stats().listeners === 6,
      'a signed-in user has its own budget',
    );
    for (const open of [held, user]) open.abort();
  });
});

/** Timers that fire only when the test says so. */
class HeldTimers implements Timers {
  readonly pending = new Map<number, { ms: number; callback: () => void }>();
  #seq = 0;
  setTimeout(callback: () => void, ms: number): number {
    this.pending.set(++this.#seq, { ms, callback });
    return this.#seq;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Fires the pending timer of `ms`. */
  fire(ms: number): void {
    const found = [...this.pending].find(([, timer]) => timer.ms === ms);
    assert.ok(found, `a pending ${ms} ms timer`);
    this.pending.delete(found[0]);
    found[1].callback();
  }
}

describe('message-bus router: a stream whose client does not read', () => {
  /** A streamed poll on a raw socket that is never read from once the request is sent. */
  async function stalledStream(server: BusServer): Promise<net.Socket> {
    const { port } = new URL(server.origin);
    const socket = net.connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {}); // the server cutting it off is the point
    const body = `${encodeURIComponent('/chat')}=`;
    socket.write(
      `POST /message-bus/stalled/poll HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    socket.pause();
    await until(() => server.router.stats().streams === 1, 'streaming');
    return socket;
  }

  const connections = (server: BusServer): Promise<number> =>
    new Promise((resolve, reject) =>
      server.server.getConnections((error, count) =>
        error ? reject(error) : resolve(count),
      ),
    );

  /** Waits (at most 5 s) until the server has closed every connection. */
  async function untilNoConnection(server: BusServer): Promise<void> {
    const deadline = Date.now() + 5000;
    while ((await connections(server)) > 0) {
      if (Date.now() > deadline)
        throw new Error('timed out waiting until the socket is closed');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Publishes 64 KiB messages (one chunk each) until `done()`, at most 400 (25 MiB, past any socket buffer). */
  async function flood(bus: MessageBus, done: () => boolean): Promise<number> {
    const payload = 'x'.repeat(64 * 1024);
    let sent = 0;
    while (!done() && sent < 400) {
      await bus.publish('/chat', payload);
      sent += 1;
      // Lets the socket hand what it can to the kernel, as between real publishes.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return sent;
  }

  it('is cut off once more than maxStreamBufferBytes wait for it: counted, its poll and socket released', async () => {
    const { server, bus } = await serve({
      longPollMs: 60_000,
      maxStreamBufferBytes: 256 * 1024,
    });
    const socket = await stalledStream(server);
    const sent = await flood(
      bus,
      () => server.router.stats().slowStreamsCutOff > 0,
    );
    console.log(`# cut off after ${sent} chunks of 64 KiB`);
    assert.equal(server.router.stats().slowStreamsCutOff, 1);
    await until(
      () =>
        server.router.stats().heldPolls === 0 &&
        server.router.stats().subscribedChannels === 0,
      'released',
    );
    assert.deepEqual(server.router.stats(), {
      ...IDLE_ROUTER_STATS,
      slowStreamsCutOff: 1,
    });
    await untilNoConnection(server);
    socket.destroy();
  });

  it('is cut off when its full buffer does not drain within streamDrainTimeoutMs, also after the stream ended', async () => {
    const timers = new HeldTimers();
    const { server, bus } = await serve({
      timers,
      longPollMs: 60_000,
      maxStreamBufferBytes: 1024 ** 3,
      streamDrainTimeoutMs: 10_000,
    });
    const socket = await stalledStream(server);
    const sent = await flood(bus, () =>
      [...timers.pending.values()].some(({ ms }) => ms === 10_000),
    );
    console.log(`# waiting for a drain after ${sent} chunks of 64 KiB`);
    assert.ok(sent < 400, 'the bound is armed while the stream is open');
    assert.equal(server.router.stats().heldPolls, 1);
    // The hold ends first: the stream is answered, but its end sits in a buffer nobody reads.
    timers.fire(60_000);
    assert.equal(server.router.stats().heldPolls, 0);
    assert.equal(await connections(server), 1, 'the socket lingers');
    timers.fire(10_000);
    assert.equal(server.router.stats().slowStreamsCutOff, 1);
    assert.equal(timers.pending.size, 0, 'no timer left');
    await untilNoConnection(server);
    socket.destroy();
  });
});

describe('message-bus router: lifecycle', () => {
  it('an aborted poll releases its hold, timer, listener and subscription at once', async () => {
    const { origin, server } = await serve({ longPollMs: 60_000 });
    const open = openPoll(origin, { dontChunk: true, body: { '/chat': 0 } });
    await until(() => server.router.stats().listeners === 1, 'held');
    open.abort();
    await until(() => server.router.stats().heldPolls === 0, 'released');
    assert.deepEqual(server.router.stats(), IDLE_ROUTER_STATS);
  });

  it('1,000 polls opened and aborted leave no held poll, timer, listener, subscription or socket', async () => {
    const { origin, server } = await serve({
      longPollMs: 60_000,
      maxHeldPolls: 1000,
      maxHeldPollsPerPeer: 1000, // every poll here comes from 127.0.0.1
      maxFollowedChannelsPerPeer: 2000,
    });
    const polls = Array.from({ length: 1000 }, (_, n) =>
      openPoll(origin, {
        clientId: `tab-${n}`,
        dontChunk: n % 2 === 0,
        body: { [`/chat/${n % 50}`]: 0, '/shared': null, __seq: 1 },
      }),
    );
    await until(
      () => server.router.stats().heldPolls === 1000,
      '1000 polls are held',
      30_000,
    );
    const during = server.router.stats();
    assert.equal(during.timers, 1000);
    assert.equal(during.listeners, 2000);
    assert.equal(during.subscribedChannels, 51);
    assert.equal(during.streams, 500);
    for (const open of polls) open.abort();
    await until(
      () =>
        server.router.stats().heldPolls === 0 &&
        server.router.stats().subscribedChannels === 0,
      'all released',
      30_000,
    );
    assert.deepEqual(server.router.stats(), IDLE_ROUTER_STATS);
    const connections = await new Promise<number>((resolve, reject) =>
      server.server.getConnections((error, count) =>
        error ? reject(error) : resolve(count),
      ),
    );
    assert.equal(connections, 0, 'no socket left open');
  });

  it('close() answers every held poll and later polls at once, then releases everything', async () => {
    const { origin, server } = await serve({ longPollMs: 60_000 }, 1);
    const longPoll = openPoll(origin, {
      clientId: 'a',
      dontChunk: true,
      body: { '/chat': msgId(1) },
    });
    const stream = openPoll(origin, {
      clientId: 'b',
      body: { '/chat': msgId(1) },
    });
    await until(
      () =>
        server.router.stats().heldPolls === 2 &&
        server.router.stats().listeners === 2,
      'held',
    );
    await server.router.close();
    assert.equal(await longPoll.body, '[]');
    assert.equal(await stream.body, '[]\r\n|\r\n[]\r\n|\r\n');
    const later = await poll(origin, {
      clientId: 'c',
      body: { '/chat': msgId(1) },
    });
    assert.deepEqual(later.body, []);
    assert.equal(later.headers['content-type'], JSON_TYPE);
    assert.deepEqual(server.router.stats(), IDLE_ROUTER_STATS);
  });

  it('close() leaves a shared bus and the store usable', async () => {
    const store: PresenceStore = new MemoryStore();
    const bus = new MessageBus({ store, clock: () => T });
    const router = messageBusRouter({ bus });
    await router.close();
    await bus.publish('/chat', 1);
    assert.deepEqual(await store.lastIds(['/chat']), { '/chat': msgId(1) });
  });
});
