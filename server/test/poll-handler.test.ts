import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MemoryStore } from '../src/core/memory-store.js';
import {
  DEFAULT_LONG_POLL_MS,
  MessageBus,
  PollHandler,
  addressKey,
  decodeChunks,
  parsePollFields,
  peerKey,
  type MessageBusOptions,
  type PollAnswer,
  type PollHandlerOptions,
  type PollHttpRequest,
  type PollResponse,
  type WireMessage,
} from '../src/core/message-bus/index.js';
import { ManualTimers, settle } from './support/manual-timers.js';
import type { CurrentUser } from '../src/core/types.js';

/**
 * The one poll handler (core) that the Express router and the test-support fake server both speak
 * through, driven directly on a fake clock: holds, timeouts, `__seq` replacement, caps and streams, with
 * no socket and no sleeping.
 */

const T = 1_764_000_000_000;

const ann: CurrentUser = {
  id: 1,
  username: 'ann',
  name: 'Ann',
  avatar_template: '/a/{size}.png',
  groupIds: [],
};

interface PollOptions {
  seq?: number;
  dlp?: boolean;
  chunked?: boolean;
  user?: CurrentUser | null;
  address?: string;
  signal?: AbortSignal;
  method?: string;
  path?: string;
}

/** A poll of `clientId` for `positions` (channel → last id, `null` for "from now"). */
function request(
  clientId: string,
  positions: Record<string, number | null>,
  options: PollOptions = {},
): PollHttpRequest {
  const fields: Record<string, string> = { __seq: String(options.seq ?? 0) };
  for (const [channel, id] of Object.entries(positions))
    fields[channel] = id === null ? '' : String(id);
  return {
    method: options.method ?? 'POST',
    path: options.path ?? `/${encodeURIComponent(clientId)}/poll`,
    query: new URLSearchParams(options.dlp ? 'dlp=t' : ''),
    header: (name) =>
      name === 'dont-chunk' && options.chunked !== true ? 'true' : undefined,
    body: (limits) => parsePollFields(fields, limits),
    user: () => options.user ?? null,
    address: options.address ?? '192.0.2.1',
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

function setup(
  options: Partial<PollHandlerOptions> = {},
  busOptions: Pick<
    MessageBusOptions,
    'maxMessagesPerPoll' | 'maxBytesPerPoll' | 'canFollow'
  > = {},
) {
  const timers = new ManualTimers();
  const store = new MemoryStore();
  const bus = new MessageBus({ store, clock: () => T, timers, ...busOptions });
  const handler = new PollHandler({ bus, timers, ...options });
  const publish = async (n: number, channel = '/chat'): Promise<void> => {
    await bus.publish(channel, n);
    await settle();
  };
  return { timers, bus, handler, publish };
}

function response(answer: PollAnswer): PollResponse {
  assert.equal(answer.kind, 'response', 'answered at once');
  return answer;
}

/** The `data` of each message, or `status` for a status entry. */
const data = (messages: unknown): unknown[] =>
  (messages as WireMessage[]).map((message) =>
    message.channel === '/__status' ? 'status' : message.data,
  );

/** A held long poll's answer, or `pending` when it is still held. */
async function outcome(answer: PollAnswer): Promise<unknown> {
  assert.equal(answer.kind, 'held', 'held');
  await settle();
  const pending = new Promise<'pending'>((resolve) =>
    setImmediate(() => resolve('pending')),
  );
  const result = await Promise.race([answer.response, pending]);
  if (result === 'pending' || result === null) return result;
  return data(result.body);
}

/** Pipes a stream into a list of decoded chunks; `ended` tells whether and how it ended. */
function collect(answer: PollAnswer): {
  chunks: () => unknown[][];
  ended: () => boolean;
} {
  assert.equal(answer.kind, 'stream', 'streamed');
  let text = '';
  let ended = false;
  answer.pipe({
    write: (chunk) => (text += chunk),
    end: (chunk) => {
      text += chunk ?? '';
      ended = true;
    },
  });
  return {
    chunks: () => {
      const { chunks, rest } = decodeChunks(text);
      assert.equal(rest, '', 'only whole chunks');
      return chunks.map(data);
    },
    ended: () => ended,
  };
}

describe('poll handler: routing and status codes', () => {
  it('404 off the poll path, 204 with Allow for OPTIONS, 405 with Allow for other methods, 400 for a bad client id', async () => {
    const { handler } = setup();
    const notFound = response(
      await handler.handle(request('c', {}, { path: '/c/other' })),
    );
    assert.equal(notFound.status, 404);
    assert.equal(
      notFound.headers['Cache-Control'],
      'must-revalidate, private, max-age=0',
    );
    const preflight = response(
      await handler.handle(request('c', {}, { method: 'OPTIONS' })),
    );
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['Allow'], 'POST, OPTIONS');
    assert.equal(preflight.body, undefined);
    const wrong = response(
      await handler.handle(request('c', {}, { method: 'GET' })),
    );
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers['Allow'], 'POST, OPTIONS');
    const badId = response(await handler.handle(request('x'.repeat(65), {})));
    assert.equal(badId.status, 400);
    const after = response(
      await handler.handle(
        request('c', { '/chat': 0 }, { path: '/c/poll/ignored', dlp: true }),
      ),
    );
    assert.equal(after.status, 200);
  });

  it('?dlp=t and a poll of no channels answer [] at once', async () => {
    const { handler } = setup();
    const dlp = response(
      await handler.handle(
        request('c', { '/chat': null }, { dlp: true, chunked: true }),
      ),
    );
    assert.deepEqual([dlp.status, dlp.body], [200, []]);
    assert.equal(
      dlp.headers['Content-Type'],
      'application/json; charset=utf-8',
    );
    assert.deepEqual(response(await handler.handle(request('c', {}))).body, []);
  });

  it('a failing store answers 503', async () => {
    const { handler, bus } = setup({ logger: { error() {} } });
    bus.poll = () => Promise.reject(new Error('down'));
    const answer = response(await handler.handle(request('c', { '/chat': 0 })));
    assert.equal(answer.status, 503);
  });
});

describe('poll handler: long polls on a fake clock', () => {
  it('holds an empty poll and answers with the first message that arrives', async () => {
    const { handler, publish, timers } = setup();
    const answer = await handler.handle(request('c', { '/chat': null }));
    assert.equal(await outcome(answer), 'pending');
    assert.deepEqual(handler.stats(), {
      heldPolls: 1,
      streams: 0,
      inFlight: 0,
      timers: 1,
    });
    await publish(1);
    assert.deepEqual(await outcome(answer), [1]);
    assert.equal(handler.stats().heldPolls, 0);
    assert.equal(timers.pending, 0, 'the hold timer is cleared');
  });

  it('answers at once when the backlog has something', async () => {
    const { handler, publish } = setup();
    await publish(1);
    assert.deepEqual(
      data(response(await handler.handle(request('c', { '/chat': 0 }))).body),
      [1],
    );
  });

  it(`times out with [] after ${DEFAULT_LONG_POLL_MS} ms, not a millisecond before`, async () => {
    const { handler, timers } = setup();
    const answer = await handler.handle(request('c', { '/chat': null }));
    await timers.advance(DEFAULT_LONG_POLL_MS - 1);
    assert.equal(await outcome(answer), 'pending');
    await timers.advance(1);
    assert.deepEqual(await outcome(answer), []);
    assert.equal(handler.stats().timers, 0);
  });

  it('honours longPollMs', async () => {
    const { handler, timers } = setup({ longPollMs: 100 });
    const answer = await handler.handle(request('c', { '/chat': null }));
    await timers.advance(100);
    assert.deepEqual(await outcome(answer), []);
  });

  it('a newer poll (same client) replaces the held one, which is answered []', async () => {
    const { handler, publish } = setup();
    const first = await handler.handle(
      request('c', { '/chat': null }, { seq: 1 }),
    );
    const second = await handler.handle(
      request('c', { '/chat': null }, { seq: 2 }),
    );
    assert.deepEqual(await outcome(first), []);
    assert.equal(await outcome(second), 'pending');
    assert.equal(handler.stats().heldPolls, 1);
    await publish(1);
    assert.deepEqual(await outcome(second), [1]);
  });

  it('another peer naming the same client id neither evicts nor silences its held poll', async () => {
    const { handler, publish } = setup();
    const victim = await handler.handle(
      request('c', { '/chat': null }, { seq: 1, address: '192.0.2.1' }),
    );
    const attacker = await handler.handle(
      request(
        'c',
        { '/chat': null },
        { seq: Number.MAX_SAFE_INTEGER, address: '198.51.100.7' },
      ),
    );
    assert.equal(await outcome(victim), 'pending', 'still held');
    assert.equal(await outcome(attacker), 'pending');
    assert.equal(handler.stats().heldPolls, 2);
    await publish(1);
    assert.deepEqual(await outcome(victim), [1], 'and still answered');
  });

  it('an older poll (lower __seq) is answered [] at once and leaves the newer held one alone', async () => {
    const { handler } = setup();
    const newer = await handler.handle(
      request('c', { '/chat': null }, { seq: 5 }),
    );
    const older = response(
      await handler.handle(request('c', { '/chat': null }, { seq: 4 })),
    );
    assert.deepEqual(older.body, []);
    assert.equal(await outcome(newer), 'pending');
  });

  it('polls of different clients are held side by side', async () => {
    const { handler, publish } = setup();
    const a = await handler.handle(request('a', { '/chat': null }));
    const b = await handler.handle(request('b', { '/chat': null }));
    assert.equal(handler.stats().heldPolls, 2);
    await publish(1);
    assert.deepEqual([await outcome(a), await outcome(b)], [[1], [1]]);
  });

  it('an aborted poll is released without an answer', async () => {
    const { handler, timers, bus } = setup();
    const gone = new AbortController();
    const answer = await handler.handle(
      request('c', { '/chat': null }, { signal: gone.signal }),
    );
    await settle();
    gone.abort();
    assert.equal(await outcome(answer), null);
    assert.deepEqual(handler.stats().heldPolls, 0);
    assert.equal(timers.pending, 0);
    assert.equal(bus.stats().watches, 0);
  });

  it('close() answers every held poll with [] and later polls at once', async () => {
    const { handler } = setup();
    const held = await handler.handle(request('c', { '/chat': null }));
    handler.close();
    assert.deepEqual(await outcome(held), []);
    assert.deepEqual(
      response(await handler.handle(request('c', { '/chat': null }))).body,
      [],
    );
  });

  it('the filter hook takes messages out before the hold decision and of every batch', async () => {
    const { handler, publish } = setup({
      filter: (messages) => messages.filter((message) => message.data !== 1),
    });
    await publish(1);
    const answer = await handler.handle(request('c', { '/chat': 0 }));
    assert.equal(await outcome(answer), 'pending', 'held: nothing left to say');
    await publish(1);
    assert.equal(
      await outcome(answer),
      'pending',
      'a filtered batch does not answer',
    );
    await publish(2);
    assert.deepEqual(await outcome(answer), [2]);
  });
});

describe('poll handler: caps', () => {
  it('a capped answer goes out at once as JSON, even for a stream; the next poll continues', async () => {
    const { handler, publish } = setup({}, { maxMessagesPerPoll: 2 });
    for (let n = 1; n <= 5; n += 1) await publish(n);
    const first = response(
      await handler.handle(request('c', { '/chat': 0 }, { chunked: true })),
    );
    assert.deepEqual(data(first.body), [1, 2]);
    assert.equal(
      first.headers['Content-Type'],
      'application/json; charset=utf-8',
    );
    const last = (first.body as WireMessage[])[1]!.message_id;
    const next = response(
      await handler.handle(
        request('c', { '/chat': last }, { chunked: true, seq: 1 }),
      ),
    );
    assert.deepEqual(data(next.body), [3, 4]);
  });

  it('past maxHeldPolls, polls are answered at once', async () => {
    const { handler } = setup({ maxHeldPolls: 1 });
    await handler.handle(request('a', { '/chat': null }));
    assert.deepEqual(
      response(await handler.handle(request('b', { '/chat': null }))).body,
      [],
    );
    assert.equal(handler.stats().heldPolls, 1);
  });

  it('past maxHeldPollsPerPeer, that peer’s polls are answered at once; other peers and users still hold', async () => {
    const { handler } = setup({ maxHeldPollsPerPeer: 1 });
    await handler.handle(
      request('a', { '/chat': null }, { address: '192.0.2.1' }),
    );
    response(
      await handler.handle(
        request('b', { '/chat': null }, { address: '192.0.2.1' }),
      ),
    );
    assert.equal(
      (
        await handler.handle(
          request('c', { '/chat': null }, { address: '192.0.2.2' }),
        )
      ).kind,
      'held',
    );
    assert.equal(
      (
        await handler.handle(
          request('d', { '/chat': null }, { address: '192.0.2.1', user: ann }),
        )
      ).kind,
      'held',
      'a signed-in user counts as its own peer',
    );
    // A replacement does not count against its own peer.
    assert.equal(
      (await handler.handle(request('a', { '/chat': null }, { seq: 1 }))).kind,
      'held',
    );
  });
});

describe('poll handler: who a peer is', () => {
  it('keys an IPv6 address by its /64, IPv4 and IPv4-mapped IPv6 by the full address, a user by id', () => {
    const cases: Array<[string, string]> = [
      ['2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
      ['2001:DB8:0001:0002::1', '2001:db8:1:2::/64'],
      ['2001:db8:1:2::', '2001:db8:1:2::/64'],
      ['2001:db8:1:3::1', '2001:db8:1:3::/64'],
      ['2001:db8::', '2001:db8:0:0::/64'],
      ['::1', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
      ['2001:db8:1:2:3:4:192.0.2.1', '2001:db8:1:2::/64'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
      ['::FFFF:c000:0201', '192.0.2.1'],
      ['192.0.2.1', '192.0.2.1'],
      // Not an address: kept as given, never merged with anything else.
      ['1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8:9'],
      ['1::2::3', '1::2::3'],
      ['1:2:3:4:5:6:7:8::', '1:2:3:4:5:6:7:8::'],
      ['256.1.1.1', '256.1.1.1'],
      ['localhost', 'localhost'],
    ];
    for (const [address, key] of cases)
      assert.equal(addressKey(address), key, address);
    assert.equal(peerKey(null, '2001:db8:1:2::9'), 'ip:2001:db8:1:2::/64');
    assert.equal(peerKey(null, undefined), 'ip:unknown');
    assert.equal(peerKey(ann, '2001:db8:1:2::9'), 'user:1');
  });

  it('one IPv6 /64 is one peer for maxHeldPollsPerPeer, however many addresses it uses', async () => {
    const { handler } = setup({ maxHeldPollsPerPeer: 1 });
    const poll = (clientId: string, address: string): Promise<PollAnswer> =>
      handler.handle(request(clientId, { '/chat': null }, { address }));
    assert.equal((await poll('a', '2001:db8:1:2::a')).kind, 'held');
    for (const [n, address] of [
      '2001:db8:1:2::b',
      '2001:db8:1:2:ffff:ffff:ffff:ffff',
      '2001:db8:1:2:1234::%eth0',
    ].entries())
      response(await poll(`b${n}`, address));
    assert.equal(
      (await poll('c', '2001:db8:1:3::a')).kind,
      'held',
      'the next /64 is another peer',
    );
    // An IPv4 client seen on a dual-stack socket is the same peer as seen on an IPv4 one.
    assert.equal((await poll('d', '::ffff:198.51.100.7')).kind, 'held');
    response(await poll('e', '198.51.100.7'));
    assert.equal((await poll('f', '198.51.100.8')).kind, 'held');
    assert.equal(handler.stats().heldPolls, 4);
  });
});

describe('poll handler: channels followed per peer', () => {
  const channels = (prefix: string, n: number): Record<string, null> =>
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`/${prefix}/${i}`, null]),
    );

  it('a poll that would take its peer past maxFollowedChannelsPerPeer is answered at once; other peers, replacements and freed budget still hold', async () => {
    const { handler, publish, bus } = setup({ maxFollowedChannelsPerPeer: 5 });
    const first = await handler.handle(request('a', channels('made-up', 3)));
    assert.equal(first.kind, 'held');
    // 3 + 3 > 5: plain polling for this one, which message-bus-client paces itself.
    const over = response(
      await handler.handle(request('b', channels('invented', 3))),
    );
    assert.deepEqual([over.status, over.body], [200, []]);
    assert.equal(
      (await handler.handle(request('c', channels('fits', 2)))).kind,
      'held',
      '3 + 2 fits',
    );
    assert.equal(
      (
        await handler.handle(
          request('d', channels('invented', 3), { address: '192.0.2.2' }),
        )
      ).kind,
      'held',
      'another peer has its own budget',
    );
    assert.equal(bus.stats().listeners, 8, 'nothing subscribed for b');
    // Replacing a held poll does not count the replaced one.
    const replacement = await handler.handle(
      request('a', { ...channels('other', 2), '/chat': null }, { seq: 1 }),
    );
    assert.deepEqual(await outcome(first), []);
    response(await handler.handle(request('e', channels('one', 1))));
    // Once the replacement is answered, its channels are free again.
    await publish(1);
    assert.deepEqual(await outcome(replacement), [1]);
    assert.equal(
      (await handler.handle(request('b', channels('invented', 3)))).kind,
      'held',
    );
  });

  it('counts only the channels a poll may follow', async () => {
    const { handler } = setup(
      { maxFollowedChannelsPerPeer: 2 },
      { canFollow: (channel) => !channel.startsWith('/secret/') },
    );
    assert.equal(
      (
        await handler.handle(
          request('a', { ...channels('secret', 10), ...channels('open', 2) }),
        )
      ).kind,
      'held',
    );
    response(await handler.handle(request('b', channels('open', 1))));
  });

  it('rejects a bad maxFollowedChannelsPerPeer with a TypeError naming it', () => {
    assert.throws(
      () => setup({ maxFollowedChannelsPerPeer: -1 }),
      /maxFollowedChannelsPerPeer must be a non-negative integer/,
    );
  });
});

describe('poll handler: streams on a fake clock', () => {
  it('an initial [], each message as it arrives, and a final [] at the timeout', async () => {
    const { handler, publish, timers } = setup();
    const stream = collect(
      await handler.handle(request('c', { '/chat': null }, { chunked: true })),
    );
    assert.deepEqual(stream.chunks(), [[]]);
    assert.equal(handler.stats().streams, 1);
    await publish(1);
    await publish(2);
    assert.deepEqual(stream.chunks(), [[], [1], [2]]);
    await timers.advance(DEFAULT_LONG_POLL_MS - 1);
    assert.equal(stream.ended(), false);
    await timers.advance(1);
    assert.deepEqual(stream.chunks(), [[], [1], [2], []]);
    assert.equal(stream.ended(), true);
    assert.deepEqual(handler.stats(), {
      heldPolls: 0,
      streams: 0,
      inFlight: 0,
      timers: 0,
    });
  });

  it('sends what the backlog has as its first chunk and stays open', async () => {
    const { handler, publish } = setup();
    await publish(1);
    const answer = await handler.handle(
      request('c', { '/chat': 0 }, { chunked: true }),
    );
    assert.equal(answer.kind, 'stream');
    assert.equal(answer.headers['Content-Type'], 'text/plain; charset=utf-8');
    const stream = collect(answer);
    assert.deepEqual(stream.chunks(), [[1]]);
    assert.equal(stream.ended(), false);
  });

  it('a replaced stream ends with its final [] chunk', async () => {
    const { handler } = setup();
    const old = collect(
      await handler.handle(
        request('c', { '/chat': null }, { chunked: true, seq: 1 }),
      ),
    );
    await handler.handle(
      request('c', { '/chat': null }, { chunked: true, seq: 2 }),
    );
    assert.deepEqual(old.chunks(), [[], []]);
    assert.equal(old.ended(), true);
  });

  it('escapes the separator inside a chunk', async () => {
    const { handler, bus } = setup();
    await bus.publish('/chat', 'a\r\n|\r\nb');
    const stream = collect(
      await handler.handle(request('c', { '/chat': 0 }, { chunked: true })),
    );
    assert.deepEqual(stream.chunks(), [['a\r\n|\r\nb']]);
  });

  it('chunks written before pipe() are delivered in order, the end included', async () => {
    const { handler, timers } = setup({ longPollMs: 10 });
    const answer = await handler.handle(
      request('c', { '/chat': null }, { chunked: true }),
    );
    await timers.advance(10);
    const stream = collect(answer);
    assert.deepEqual(stream.chunks(), [[], []]);
    assert.equal(stream.ended(), true);
  });
});

describe('poll handler: immediate answers', () => {
  it('the byte cap counts UTF-8 bytes: messages of emoji names are cut in bytes, not UTF-16 units', async () => {
    const maxBytesPerPoll = 4096;
    const { handler, bus } = setup({}, { maxBytesPerPoll });
    // 100 emoji: 200 UTF-16 units, 400 bytes per message.
    const name = '😀'.repeat(100);
    for (let n = 0; n < 20; n += 1)
      await bus.publish('/chat', { username: name, n });
    const answer = response(await handler.handle(request('c', { '/chat': 0 })));
    const sent = (answer.body as WireMessage[]).length;
    const bytes = Buffer.byteLength(answer.text!);
    assert.ok(bytes <= maxBytesPerPoll, `${bytes} bytes, above the cap`);
    // Counted in UTF-16 units it would have taken about twice as many.
    assert.ok(
      bytes + Buffer.byteLength(JSON.stringify((answer.body as unknown[])[0])) >
        maxBytesPerPoll,
      'and as many as fit',
    );
    assert.ok(sent > 1 && sent < 20, `${sent} messages`);
  });

  it('serialises each message of an answer from the backlog once, and sends that text', async (t) => {
    const { handler, bus } = setup();
    for (let n = 0; n < 3; n += 1)
      await bus.publish('/chat', { text: `é${n}` });
    const stringify = t.mock.method(JSON, 'stringify');
    const answer = response(await handler.handle(request('c', { '/chat': 0 })));
    const body = answer.body as WireMessage[];
    // Any serialisation of one of these messages in wire shape, whatever object carries it.
    const ids = new Set(body.map((message) => message.global_id));
    const isOne = (value: unknown): boolean =>
      typeof value === 'object' &&
      value !== null &&
      ids.has((value as WireMessage).global_id) &&
      Object.keys(value).sort().join() === 'channel,data,global_id,message_id';
    const serialisations = stringify.mock.calls.filter(
      ({ arguments: [value] }) =>
        isOne(value) || (Array.isArray(value) && value.some(isOne)),
    );
    stringify.mock.restore();
    assert.equal(serialisations.length, body.length, 'once per message');
    assert.equal(answer.text, JSON.stringify(body));
  });
});

describe('poll handler: fan-out serialises a message once', () => {
  it('one message to many held polls and streams: one JSON.stringify of it, one shared answer text, audiences kept', async (t) => {
    const { handler, timers, bus, publish } = setup({
      maxHeldPolls: 1000,
      maxHeldPollsPerPeer: 1000,
    });
    // The polls wait from the current last id, so the message arrives as the next one (no backlog read).
    await publish(0);
    const bob: CurrentUser = { ...ann, id: 2, username: 'bob' };
    const polls: PollAnswer[] = [];
    const denied: PollAnswer[] = [];
    const streams: string[] = [];
    for (let i = 0; i < 150; i += 1)
      polls.push(
        await handler.handle(
          request(`a${i}`, { '/chat': null }, { user: ann }),
        ),
      );
    for (let i = 0; i < 50; i += 1)
      denied.push(
        await handler.handle(
          request(`b${i}`, { '/chat': null }, { user: bob }),
        ),
      );
    for (let i = 0; i < 100; i += 1) {
      const answer = await handler.handle(
        request(`s${i}`, { '/chat': null }, { user: ann, chunked: true }),
      );
      assert.equal(answer.kind, 'stream');
      const index = streams.push('') - 1;
      answer.pipe({
        write: (chunk) => (streams[index] += chunk),
        end: (chunk) => (streams[index] += chunk ?? ''),
      });
    }
    await settle();
    assert.equal(handler.stats().heldPolls, 300);

    const stringify = t.mock.method(JSON, 'stringify');
    await bus.publish('/chat', { text: 'hi\r\n|\r\n' }, { userIds: [ann.id] });
    await settle();

    const answers = await Promise.all(
      polls.map((answer) => {
        assert.equal(answer.kind, 'held');
        return answer.response;
      }),
    );
    const wire = (answers[0]!.body as WireMessage[])[0]!;
    assert.deepEqual(data([wire]), [{ text: 'hi\r\n|\r\n' }]);
    // Any serialisation of this message to the wire, as itself or inside an answer, whatever object
    // carries it (the store's own copy, with its audience, is the store's business).
    const isIt = (value: unknown): boolean =>
      (value as WireMessage | null)?.global_id === wire.global_id &&
      !Object.hasOwn(value as object, 'user_ids');
    const serialisations = stringify.mock.calls.filter(
      ({ arguments: [value] }) =>
        isIt(value) || (Array.isArray(value) && value.some(isIt)),
    );
    assert.equal(serialisations.length, 1, 'the message is serialised once');
    stringify.mock.restore();

    const text = JSON.stringify([wire]);
    for (const answer of answers) {
      assert.equal((answer!.body as WireMessage[])[0], wire, 'one wire object');
      assert.equal(
        answer!.text,
        text,
        'byte-identical to JSON.stringify(body)',
      );
    }
    // The initial `[]` chunk, then the message's, its separator escaped.
    const chunks = `[]\r\n|\r\n${text.split('\r\n|\r\n').join('\r\n||\r\n')}\r\n|\r\n`;
    for (const stream of streams) assert.equal(stream, chunks);

    // Bob may not see it: still held, then told to skip past it, never given it.
    for (const answer of denied) assert.equal(await outcome(answer), 'pending');
    await timers.advance(DEFAULT_LONG_POLL_MS);
    for (const answer of denied) {
      assert.equal(answer.kind, 'held');
      const result = await answer.response;
      assert.deepEqual(result!.body, [
        {
          global_id: -1,
          message_id: -1,
          channel: '/__status',
          data: { '/chat': wire.message_id },
        },
      ]);
      assert.equal(result!.text, JSON.stringify(result!.body));
    }
  });
});
