import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { HttpError } from '../src/core/errors.js';
import type { Logger } from '../src/core/logger.js';
import { MemoryStore } from '../src/core/memory-store.js';
import {
  CHUNK_SEPARATOR,
  MessageBus,
  decodeChunks,
  encodeChunk,
  escapeChunk,
  isAudienceMember,
  normaliseAudience,
  parsePollBody,
  parsePollFields,
  presenceChannelAccess,
  statusMessage,
  toWireMessage,
  type BusRequester,
  type PollRequest,
  type WireMessage,
} from '../src/core/message-bus/index.js';
import type { PresenceStore } from '../src/core/store.js';
import type { BusMessage, ChannelConfig } from '../src/core/types.js';
import { answerJson, sharedWireMessage } from '../src/core/message-bus/wire.js';
import { messageIds } from './support/message-ids.js';

const T = 1_764_000_000_000;
/** The ids of a backlog created at T: every bus here publishes on a clock stopped at T. */
const msgId = messageIds(T);
/** `ids()` of a status entry. */
const status = (lastIds: Record<string, number>): string =>
  `status:${JSON.stringify(lastIds)}`;
const FORM = 'application/x-www-form-urlencoded';

const anonymous: BusRequester = { clientId: 'tab-anon', user: null };
const ann: BusRequester = {
  clientId: 'tab-ann',
  user: { id: 1, groupIds: [10] },
};
const bob: BusRequester = {
  clientId: 'tab-bob',
  user: { id: 2, groupIds: [20] },
};

const silent: Logger = { error() {} };

function request(
  positions: Record<string, number | null>,
  seq = 1,
): PollRequest {
  return {
    positions: Object.entries(positions).map(([channel, lastId]) => ({
      channel,
      lastId,
    })),
    seq,
  };
}

/** A bus on a fresh MemoryStore with `count` messages already on `/chat` (data = their number). */
async function busWith(
  count: number,
  channel = '/chat',
): Promise<{ bus: MessageBus; store: MemoryStore }> {
  const store = new MemoryStore();
  const bus = new MessageBus({ store, clock: () => T, logger: silent });
  for (let n = 1; n <= count; n += 1) await bus.publish(channel, n);
  return { bus, store };
}

/**
 * The bus's timers are unref'd (they must never keep a server process alive), so a test that only waits
 * on one needs something to keep the event loop running until its promise settles.
 */
async function keepAlive<T>(promise: Promise<T>): Promise<T> {
  const interval = setInterval(() => {}, 1000);
  try {
    return await promise;
  } finally {
    clearInterval(interval);
  }
}

/** `store` with some methods replaced (the rest bound to the real store, whose fields are private). */
function withOverrides(
  store: PresenceStore,
  overrides: Partial<PresenceStore>,
): PresenceStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (Object.hasOwn(overrides, property))
        return overrides[property as keyof PresenceStore];
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function'
        ? (value as (...args: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

function ids(messages: readonly WireMessage[]): Array<number | string> {
  return messages.map((m) =>
    m.channel === '/__status'
      ? `status:${JSON.stringify(m.data)}`
      : m.message_id,
  );
}

function assertHttp400(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof HttpError, 'an HttpError');
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_parameters');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('parsePollBody', () => {
  it('reads a form body as message-bus-client sends it, channels in order, ids as numbers', () => {
    const body = new URLSearchParams({
      '/presence/site/online': '-1',
      '/chat': '7',
      __seq: '3',
    }).toString();
    assert.deepEqual(parsePollBody(body, `${FORM}; charset=UTF-8`), {
      positions: [
        { channel: '/presence/site/online', lastId: -1 },
        { channel: '/chat', lastId: 7 },
      ],
      seq: 3,
    });
  });

  it('reads a JSON body with number or string ids', () => {
    assert.deepEqual(
      parsePollBody(
        '{"/a":0,"/b":"12","/c":null,"__seq":2}',
        'application/json',
      ),
      {
        positions: [
          { channel: '/a', lastId: 0 },
          { channel: '/b', lastId: 12 },
          { channel: '/c', lastId: null },
        ],
        seq: 2,
      },
    );
  });

  it('takes a body starting with "{" as JSON whatever its content type', () => {
    assert.deepEqual(parsePollBody('{"/a":-3}', 'text/plain').positions, [
      { channel: '/a', lastId: -3 },
    ]);
  });

  it('treats an empty value (and "null"/"undefined") as "from now"', () => {
    const parsed = parsePollBody(
      '%2Fa=&%2Fb=null&%2Fc=undefined&%2Fd=%20',
      FORM,
    );
    assert.deepEqual(
      parsed.positions.map((p) => p.lastId),
      [null, null, null, null],
    );
  });

  it('accepts an empty body as a poll of nothing with __seq 0', () => {
    assert.deepEqual(parsePollBody('', undefined), { positions: [], seq: 0 });
    assert.deepEqual(parsePollBody('', 'application/json'), {
      positions: [],
      seq: 0,
    });
  });

  it('ignores keys that are not channels (a host CSRF token) and the /__status pseudo-channel', () => {
    assert.deepEqual(
      parsePollBody('authenticity_token=x&%2F__status=1&%2Fa=1', FORM)
        .positions,
      [{ channel: '/a', lastId: 1 }],
    );
  });

  it('keeps the last value of a repeated form key', () => {
    assert.deepEqual(parsePollBody('%2Fa=1&%2Fa=5', FORM).positions, [
      { channel: '/a', lastId: 5 },
    ]);
  });

  it('folds -0 into 0', () => {
    assert.equal(parsePollBody('%2Fa=-0', FORM).positions[0]!.lastId, 0);
    assert.equal(parsePollFields({ '/a': -0 }).positions[0]!.lastId, 0);
  });

  it('rejects malformed JSON with a 400', () => {
    assertHttp400(
      () => parsePollBody('{"/a":', 'application/json'),
      /not valid JSON/,
    );
  });

  it('rejects a JSON body that is not an object with a 400', () => {
    for (const body of ['[1,2]', '"x"', '12', 'null', 'true']) {
      assertHttp400(
        () => parsePollBody(body, 'application/json'),
        /map of channel names/,
      );
    }
  });

  it('rejects ids that are not integers with a 400 naming the channel', () => {
    for (const value of [
      'abc',
      '1.5',
      '1e3',
      '+1',
      '0x10',
      '99999999999999999999',
    ]) {
      assertHttp400(
        () => parsePollBody(`%2Fchat=${encodeURIComponent(value)}`, FORM),
        /"\/chat" must be an integer/,
      );
    }
    for (const value of [
      1.5,
      true,
      [1],
      { id: 1 },
      Number.NaN,
      Infinity,
      2 ** 60,
    ]) {
      assertHttp400(
        () => parsePollFields({ '/chat': value }),
        /"\/chat" must be an integer/,
      );
    }
  });

  it('rejects a __seq that is not a non-negative integer with a 400', () => {
    for (const value of ['x', '-1', '1.5']) {
      assertHttp400(
        () => parsePollBody(`__seq=${value}&%2Fa=1`, FORM),
        /__seq must be a non-negative integer/,
      );
    }
    assertHttp400(() => parsePollFields({ __seq: [1] }), /__seq/);
  });

  it('rejects channel names that are too long or contain control characters with a 400', () => {
    assertHttp400(
      () => parsePollFields({ [`/${'x'.repeat(256)}`]: 1 }),
      /at most 256 characters/,
    );
    assertHttp400(() => parsePollFields({ '/a\nb': 1 }), /control characters/);
  });

  it('rejects more channels than the limit with a 400', () => {
    const fields: Record<string, number> = {};
    for (let i = 0; i < 4; i += 1) fields[`/c${i}`] = 1;
    assert.equal(
      parsePollFields(fields, { maxChannels: 4 }).positions.length,
      4,
    );
    assertHttp400(
      () => parsePollFields(fields, { maxChannels: 3 }),
      /at most 3 channels/,
    );
  });

  it('is not fooled by a "__proto__" key', () => {
    assert.deepEqual(
      parsePollBody('{"__proto__":{"x":1},"/a":1}', 'application/json')
        .positions,
      [{ channel: '/a', lastId: 1 }],
    );
  });
});

describe('isAudienceMember', () => {
  const message = (audience: Partial<BusMessage>): Partial<BusMessage> =>
    audience;

  // Every combination of the three lists: [audience, anonymous, ann (user 1, group 10, tab-ann), bob (user 2, group 20)].
  const cases: Array<[string, Partial<BusMessage>, boolean, boolean, boolean]> =
    [
      ['no lists: everyone', {}, true, true, true],
      [
        'empty lists are absent',
        { user_ids: [], group_ids: [], client_ids: [] },
        true,
        true,
        true,
      ],
      ['user_ids only', { user_ids: [1] }, false, true, false],
      ['group_ids only', { group_ids: [20] }, false, false, true],
      [
        'user_ids OR group_ids',
        { user_ids: [1], group_ids: [20] },
        false,
        true,
        true,
      ],
      [
        'client_ids only',
        { client_ids: ['tab-ann', 'tab-anon'] },
        true,
        true,
        false,
      ],
      [
        'client_ids AND user_ids',
        { client_ids: ['tab-bob'], user_ids: [1] },
        false,
        false,
        false,
      ],
      [
        'client_ids AND user_ids (match both)',
        { client_ids: ['tab-ann'], user_ids: [1] },
        false,
        true,
        false,
      ],
      [
        'client_ids AND group_ids',
        { client_ids: ['tab-ann', 'tab-bob'], group_ids: [20] },
        false,
        false,
        true,
      ],
      [
        'client_ids AND (user_ids OR group_ids)',
        {
          client_ids: ['tab-ann', 'tab-bob', 'tab-anon'],
          user_ids: [1],
          group_ids: [20],
        },
        false,
        true,
        true,
      ],
      [
        'nobody listed matches',
        { user_ids: [99], group_ids: [99] },
        false,
        false,
        false,
      ],
    ];
  for (const [name, audience, anonymousSees, annSees, bobSees] of cases) {
    it(`${name}`, () => {
      assert.equal(
        isAudienceMember(message(audience), anonymous),
        anonymousSees,
        'anonymous',
      );
      assert.equal(isAudienceMember(message(audience), ann), annSees, 'ann');
      assert.equal(isAudienceMember(message(audience), bob), bobSees, 'bob');
    });
  }

  it('treats a user without a group list as having no groups', () => {
    const odd = {
      clientId: 'x',
      user: { id: 5, groupIds: undefined as unknown as number[] },
    };
    assert.equal(isAudienceMember({ group_ids: [10] }, odd), false);
    assert.equal(isAudienceMember({ user_ids: [5] }, odd), true);
  });
});

describe('normaliseAudience', () => {
  it('keeps non-empty lists, deduplicated, and drops empty ones', () => {
    assert.deepEqual(
      normaliseAudience({ userIds: [1, 1, 2], groupIds: [], clientIds: ['a'] }),
      {
        userIds: [1, 2],
        clientIds: ['a'],
      },
    );
    assert.deepEqual(normaliseAudience(undefined), {});
    assert.deepEqual(normaliseAudience(null), {});
  });

  it('throws a TypeError naming the bad field rather than widening the audience', () => {
    assert.throws(
      () => normaliseAudience({ userIds: ['1'] as unknown as number[] }),
      /userIds must be an array of integer/,
    );
    assert.throws(
      () => normaliseAudience({ groupIds: 3 as unknown as number[] }),
      /groupIds/,
    );
    assert.throws(
      () => normaliseAudience({ clientIds: [''] }),
      /clientIds must be an array of non-empty strings/,
    );
  });
});

describe('wire format', () => {
  it('never leaks the audience lists to the client', () => {
    const stored: BusMessage = {
      global_id: 9,
      message_id: 3,
      channel: '/a',
      data: { x: 1 },
      user_ids: [1],
      group_ids: [2],
      client_ids: ['c'],
    };
    assert.deepEqual(toWireMessage(stored), {
      global_id: 9,
      message_id: 3,
      channel: '/a',
      data: { x: 1 },
    });
  });

  it('builds the /__status pseudo-message', () => {
    assert.deepEqual(statusMessage({ '/a': 4 }), {
      global_id: -1,
      message_id: -1,
      channel: '/__status',
      data: { '/a': 4 },
    });
  });

  it('frames a chunk as JSON followed by the separator', () => {
    assert.equal(encodeChunk([]), '[]\r\n|\r\n');
    assert.equal(CHUNK_SEPARATOR, '\r\n|\r\n');
  });

  it('escapes any separator inside a chunk (JSON.stringify never emits one, but the framing must hold)', () => {
    assert.equal(escapeChunk('["a\r\n|\r\nb"]'), '["a\r\n||\r\nb"]');
    assert.equal(escapeChunk('[1]'), '[1]');
  });

  it('decodes a stream of chunks and keeps an incomplete tail', () => {
    const message = { global_id: 1, message_id: 1, channel: '/a', data: 'x' };
    const { chunks, rest } = decodeChunks(
      `${encodeChunk([message])}${encodeChunk([])}[{"glo`,
    );
    assert.deepEqual(chunks, [[message], []]);
    assert.equal(rest, '[{"glo');
  });

  it('a payload containing the separator text survives a chunk round trip', () => {
    const message = {
      global_id: 1,
      message_id: 1,
      channel: '/a',
      data: 'a\r\n|\r\nb',
    };
    assert.ok(
      !encodeChunk([message])
        .slice(0, -CHUNK_SEPARATOR.length)
        .includes(CHUNK_SEPARATOR),
    );
    assert.deepEqual(decodeChunks(encodeChunk([message])).chunks, [[message]]);
  });

  it('a shared wire message is one object per stored message, serialised once, and its answers match JSON.stringify byte for byte', (t) => {
    const stored: BusMessage = {
      global_id: 9,
      message_id: 3,
      channel: '/a',
      data: { text: 'é\u2028"\r\n|\r\n', n: [1, null] },
      user_ids: [1],
    };
    const other: BusMessage = { ...stored, global_id: 10, message_id: 4 };
    const wire = sharedWireMessage(stored);
    assert.equal(sharedWireMessage(stored), wire);
    assert.deepEqual(wire, toWireMessage(stored));
    const status = statusMessage({ '/a': 4 });
    const lists: WireMessage[][] = [
      [],
      [wire],
      [wire, sharedWireMessage(other)],
      [wire, status],
      [status],
    ];
    const expected = lists.map((list) => JSON.stringify(list));
    const stringify = t.mock.method(JSON, 'stringify');
    for (let round = 0; round < 3; round += 1) {
      lists.forEach((list, index) => {
        assert.equal(answerJson(list), expected[index]);
        assert.equal(
          encodeChunk(list),
          `${escapeChunk(expected[index]!)}${CHUNK_SEPARATOR}`,
        );
      });
    }
    const ours = stringify.mock.calls.filter(
      ({ arguments: [value] }) =>
        value === wire || (Array.isArray(value) && value.includes(wire)),
    );
    assert.equal(ours.length, 1, 'the message itself, once');
  });
});

describe('MessageBus.poll id rules', () => {
  it('empty/null: nothing now, waits from the current last id', async () => {
    const { bus } = await busWith(3);
    assert.deepEqual(await bus.poll(request({ '/chat': null }), anonymous), {
      messages: [],
      cursor: { '/chat': msgId(3) },
      truncated: false,
    });
  });

  it('-1: from now, with a status entry carrying the last id', async () => {
    const { bus } = await busWith(3);
    const result = await bus.poll(request({ '/chat': -1 }), anonymous);
    assert.deepEqual(result.messages, [statusMessage({ '/chat': msgId(3) })]);
    assert.deepEqual(result.cursor, { '/chat': msgId(3) });
  });

  it('-1 on a channel without messages: status 0', async () => {
    const { bus } = await busWith(0);
    assert.deepEqual(
      (await bus.poll(request({ '/chat': -1 }), anonymous)).messages,
      [statusMessage({ '/chat': 0 })],
    );
  });

  it('-N (N > 1): replays the last N-1 messages', async () => {
    const { bus } = await busWith(5);
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': -2 }), anonymous)).messages),
      [5].map(msgId),
    );
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': -4 }), anonymous)).messages),
      [3, 4, 5].map(msgId),
    );
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': -100 }), anonymous)).messages),
      [1, 2, 3, 4, 5].map(msgId),
    );
  });

  it('-N on an empty channel: nothing, no status', async () => {
    const { bus } = await busWith(0);
    assert.deepEqual(await bus.poll(request({ '/chat': -5 }), anonymous), {
      messages: [],
      cursor: { '/chat': 0 },
      truncated: false,
    });
  });

  it('0: the whole backlog', async () => {
    const { bus } = await busWith(3);
    const result = await bus.poll(request({ '/chat': 0 }), anonymous);
    assert.deepEqual(ids(result.messages), [1, 2, 3].map(msgId));
    assert.deepEqual(result.cursor, { '/chat': msgId(3) });
    assert.deepEqual(result.messages[0], {
      global_id: result.messages[0]!.global_id,
      message_id: msgId(1),
      channel: '/chat',
      data: 1,
    });
  });

  it('k > 0: messages with id > k', async () => {
    const { bus } = await busWith(5);
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': msgId(3) }), anonymous)).messages),
      [4, 5].map(msgId),
    );
  });

  it('k equal to the last id: nothing, wait from k', async () => {
    const { bus } = await busWith(5);
    assert.deepEqual(
      await bus.poll(request({ '/chat': msgId(5) }), anonymous),
      { messages: [], cursor: { '/chat': msgId(5) }, truncated: false },
    );
  });

  it('an id beyond the last id (the backlog was reset): treated as -1', async () => {
    const { bus } = await busWith(2);
    const result = await bus.poll(request({ '/chat': msgId(40) }), anonymous);
    assert.deepEqual(result.messages, [statusMessage({ '/chat': msgId(2) })]);
    assert.deepEqual(result.cursor, { '/chat': msgId(2) });
  });

  it('answers several channels in request order with one status entry last', async () => {
    const { bus } = await busWith(2, '/b');
    await bus.publish('/a', 'a1');
    const result = await bus.poll(
      request({ '/a': 0, '/b': -1, '/c': -1, '/d': null }),
      anonymous,
    );
    assert.deepEqual(ids(result.messages), [
      msgId(1),
      status({ '/b': msgId(2), '/c': 0 }),
    ]);
    assert.equal(result.messages[0]!.channel, '/a');
    assert.deepEqual(result.cursor, {
      '/a': msgId(1),
      '/b': msgId(2),
      '/c': 0,
      '/d': 0,
    });
  });

  it('continues from the newest id when older messages were trimmed from a capped backlog', async () => {
    const store = new MemoryStore({ backlogSize: 2 });
    const bus = new MessageBus({ store, clock: () => T, logger: silent });
    for (let n = 1; n <= 5; n += 1) await bus.publish('/chat', n);
    const result = await bus.poll(request({ '/chat': msgId(1) }), anonymous);
    assert.deepEqual(ids(result.messages), [4, 5].map(msgId));
    assert.deepEqual(result.cursor, { '/chat': msgId(5) });
  });
});

describe('MessageBus.poll: one answer is bounded', () => {
  /** Polls from `positions` until an answer is not truncated; returns every answer. */
  async function drain(
    bus: MessageBus,
    positions: Record<string, number>,
    requester: BusRequester = anonymous,
  ) {
    const answers = [];
    let from = { ...positions };
    for (let round = 0; round < 100; round++) {
      const answer = await bus.poll(request(from), requester);
      answers.push(answer);
      from = answer.cursor;
      if (!answer.truncated) return answers;
    }
    throw new Error('still truncated after 100 polls');
  }

  it('caps messages per answer, shares the cap between channels, and the next polls continue without a gap', async () => {
    const store = new MemoryStore();
    const bus = new MessageBus({
      store,
      clock: () => T,
      logger: silent,
      maxMessagesPerPoll: 6,
    });
    const channels = ['/a', '/b', '/c'];
    for (let n = 1; n <= 10; n++)
      for (const channel of channels) await bus.publish(channel, n);

    const answers = await drain(bus, { '/a': 0, '/b': 0, '/c': 0 });
    for (const answer of answers)
      assert.ok(answer.messages.length <= 6, 'never more than the cap');
    assert.equal(answers[0]!.truncated, true);
    assert.deepEqual(
      answers[0]!.messages.map((m) => `${m.channel}:${String(m.data)}`),
      ['/a:1', '/a:2', '/b:1', '/b:2', '/c:1', '/c:2'],
      'every channel moves on each poll',
    );
    for (const channel of channels) {
      const ids = answers
        .flatMap((a) => a.messages)
        .filter((m) => m.channel === channel)
        .map((m) => m.message_id);
      assert.deepEqual(
        ids,
        Array.from({ length: 10 }, (_, i) => msgId(i + 1)),
        `${channel}: all ten, in order, none twice`,
      );
    }
    assert.equal(answers.at(-1)!.truncated, false);
    await bus.close();
    await store.close();
  });

  it('caps the bytes of an answer', async () => {
    const { bus, store } = await busWith(0);
    const capped = new MessageBus({
      store,
      clock: () => T,
      logger: silent,
      maxBytesPerPoll: 3_000,
    });
    for (let n = 1; n <= 10; n++) await capped.publish('/big', 'x'.repeat(900));
    const answers = await drain(capped, { '/big': 0 });
    for (const answer of answers)
      assert.ok(
        JSON.stringify(answer.messages).length <= 3_000 + 2,
        'within the byte cap',
      );
    assert.equal(
      answers.flatMap((a) => a.messages).length,
      10,
      'everything arrives over several polls',
    );
    await capped.close();
    await bus.close();
    await store.close();
  });

  it('rejects a cap that is not a positive integer', () => {
    const store = new MemoryStore();
    assert.throws(
      () => new MessageBus({ store, maxMessagesPerPoll: 0 }),
      /maxMessagesPerPoll must be a positive integer/,
    );
    void store.close();
  });
});

describe('MessageBus.poll audience filtering', () => {
  async function restrictedBus(): Promise<MessageBus> {
    const { bus } = await busWith(0);
    await bus.publish('/chat', 'to everyone'); // 1
    await bus.publish('/chat', 'to ann', { userIds: [1] }); // 2
    await bus.publish('/chat', 'to group 20', { groupIds: [20] }); // 3
    await bus.publish('/chat', 'to tab-ann', { clientIds: ['tab-ann'] }); // 4
    return bus;
  }

  it('delivers only what each requester may see', async () => {
    const bus = await restrictedBus();
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': 0 }), ann)).messages),
      [msgId(1), msgId(2), msgId(4), status({ '/chat': msgId(4) })],
    );
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': 0 }), bob)).messages),
      [msgId(1), msgId(3), status({ '/chat': msgId(4) })],
    );
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': 0 }), anonymous)).messages),
      [msgId(1), status({ '/chat': msgId(4) })],
    );
  });

  it('a filtered message still advances the client through a status entry', async () => {
    const { bus } = await busWith(1);
    await bus.publish('/chat', 'secret', { userIds: [1] });
    const result = await bus.poll(request({ '/chat': msgId(1) }), bob);
    assert.deepEqual(result.messages, [statusMessage({ '/chat': msgId(2) })]);
    assert.deepEqual(result.cursor, { '/chat': msgId(2) });
  });

  it('no status entry when nothing was filtered', async () => {
    const bus = await restrictedBus();
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': msgId(3) }), ann)).messages),
      [msgId(4)],
    );
  });

  it('the status id never moves the client backwards past a delivered message', async () => {
    const { bus } = await busWith(0);
    await bus.publish('/chat', 'secret', { userIds: [2] }); // 1
    await bus.publish('/chat', 'public'); // 2
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': 0 }), ann)).messages),
      [msgId(2), status({ '/chat': msgId(2) })],
    );
  });

  it('filtered messages in a -N replay are reported through the status entry too', async () => {
    const { bus } = await busWith(1);
    await bus.publish('/chat', 'secret', { clientIds: ['other-tab'] });
    assert.deepEqual(
      ids((await bus.poll(request({ '/chat': -3 }), ann)).messages),
      [msgId(1), status({ '/chat': msgId(2) })],
    );
  });
});

describe('MessageBus canFollow', () => {
  it('makes a forbidden channel indistinguishable from one that never had a message', async () => {
    const store = new MemoryStore();
    const bus = new MessageBus({
      store,
      clock: () => T,
      logger: silent,
      canFollow: (channel) => channel !== '/secret',
    });
    for (let n = 1; n <= 3; n += 1) await bus.publish('/secret', n);
    for (const lastId of [-1, 0, msgId(2), msgId(40), -3, null]) {
      const secret = await bus.poll(request({ '/secret': lastId }), ann);
      const unknown = await bus.poll(request({ '/unknown': lastId }), ann);
      assert.deepEqual(
        JSON.stringify(secret.messages).replace('/secret', '/unknown'),
        JSON.stringify(unknown.messages),
        `lastId ${String(lastId)}`,
      );
    }
    assert.deepEqual(
      (await bus.poll(request({ '/secret': msgId(2) }), ann)).cursor,
      {},
      'a forbidden channel is not watched',
    );
  });

  it('rejects the whole poll when the hook throws, revealing nothing', async () => {
    const store = new MemoryStore();
    const bus = new MessageBus({
      store,
      logger: silent,
      canFollow: (channel) => {
        if (channel === '/broken') throw new Error('config store down');
        return true;
      },
    });
    await bus.publish('/chat', 1);
    await assert.rejects(
      bus.poll(request({ '/chat': 0, '/broken': -1 }), ann),
      /config store down/,
    );
  });

  it('only a verdict of true allows', async () => {
    const store = new MemoryStore();
    const bus = new MessageBus({
      store,
      logger: silent,
      canFollow: () => 'yes' as unknown as boolean,
    });
    await bus.publish('/chat', 1);
    assert.deepEqual(
      (await bus.poll(request({ '/chat': 0 }), ann)).messages,
      [],
    );
  });

  it('presenceChannelAccess applies canView to /presence channels only', async () => {
    const configs: Record<string, ChannelConfig | null> = {
      '/site/online': {
        public: true,
        allowedUserIds: null,
        allowedGroupIds: null,
        countOnly: false,
        timeout: 60,
      },
      '/staff/room': {
        public: false,
        allowedUserIds: null,
        allowedGroupIds: [20],
        countOnly: false,
        timeout: 60,
      },
    };
    const canFollow = presenceChannelAccess({
      getConfig: (name) => Promise.resolve(configs[name] ?? null),
    });
    assert.equal(await canFollow('/presence/site/online', anonymous), true);
    assert.equal(await canFollow('/presence/staff/room', bob), true);
    assert.equal(await canFollow('/presence/staff/room', ann), false);
    assert.equal(await canFollow('/presence/missing/x', ann), false);
    assert.equal(await canFollow('/chat', anonymous), true);
  });
});

describe('MessageBus.publish', () => {
  it('stores a JSON copy: mutating the object afterwards changes nothing', async () => {
    const { bus } = await busWith(0);
    const data = { n: 1 };
    await bus.publish('/chat', data);
    data.n = 2;
    assert.deepEqual(
      (await bus.poll(request({ '/chat': 0 }), anonymous)).messages[0]!.data,
      { n: 1 },
    );
  });

  it('rejects invalid channels, reserved presence channels, non-JSON data and bad audiences', async () => {
    const { bus } = await busWith(0);
    await assert.rejects(bus.publish('chat', 1), /invalid channel "chat"/);
    await assert.rejects(bus.publish('/__status', 1), /invalid channel/);
    await assert.rejects(
      bus.publish('/presence/site/online', 1),
      /reserved for presence/,
    );
    await assert.rejects(
      bus.publish('/chat', undefined),
      /must be a JSON value/,
    );
    await assert.rejects(
      bus.publish('/chat', { big: 1n }),
      /not JSON-serialisable/,
    );
    await assert.rejects(
      bus.publish('/chat', 1, { userIds: ['x'] as unknown as number[] }),
      /userIds/,
    );
  });
});

describe('MessageBus.watch and wait', () => {
  it('wait resolves with the next message the requester may see', async () => {
    const { bus } = await busWith(1);
    const { cursor } = await bus.poll(request({ '/chat': null }), ann);
    const waiting = bus.wait(cursor, ann, { timeoutMs: 5000 });
    await bus.publish('/chat', 'hello');
    assert.deepEqual(ids(await waiting), [msgId(2)]);
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
  });

  it('wait skips filtered messages and reports them as a status entry at the timeout', async () => {
    const { bus } = await busWith(0);
    const waiting = bus.wait({ '/chat': 0 }, bob, { timeoutMs: 50 });
    await new Promise((resolve) => setImmediate(resolve));
    await bus.publish('/chat', 'secret', { userIds: [1] });
    assert.deepEqual(await keepAlive(waiting), [
      statusMessage({ '/chat': msgId(1) }),
    ]);
  });

  it('wait delivers a filtered-then-visible pair as the visible message plus a status entry', async () => {
    const { bus } = await busWith(0);
    const waiting = bus.wait({ '/a': 0, '/b': 0 }, bob, { timeoutMs: 5000 });
    await new Promise((resolve) => setImmediate(resolve));
    await bus.publish('/a', 'secret', { userIds: [1] });
    await bus.publish('/b', 'visible');
    assert.deepEqual(ids(await waiting), [
      msgId(1),
      status({ '/a': msgId(1) }),
    ]);
  });

  it('wait resolves with [] at the timeout and releases its subscription', async () => {
    const { bus } = await busWith(0);
    assert.deepEqual(
      await keepAlive(bus.wait({ '/chat': 0 }, ann, { timeoutMs: 10 })),
      [],
    );
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
  });

  it('wait times out on injected timers, so a fake clock decides when a long poll ends', async () => {
    const pending = new Map<number, () => void>();
    let nextId = 1;
    const store = new MemoryStore();
    const bus = new MessageBus({
      store,
      clock: () => T,
      logger: silent,
      timers: {
        setTimeout(callback) {
          pending.set(nextId, callback);
          return nextId++;
        },
        clearTimeout(handle) {
          pending.delete(handle as number);
        },
      },
    });
    const waiting = bus.wait({ '/chat': 0 }, ann, { timeoutMs: 25_000 });
    assert.equal(pending.size, 1);
    for (const fire of pending.values()) fire();
    assert.deepEqual(await waiting, []);
    const answered = bus.wait({ '/chat': 0 }, ann, { timeoutMs: 25_000 });
    await new Promise((resolve) => setImmediate(resolve));
    await bus.publish('/chat', 1);
    assert.deepEqual(ids(await answered), [msgId(1)]);
    assert.equal(pending.size, 0, 'every wait cleared its timer');
  });

  it('wait resolves with [] when aborted, at once, even before it started', async () => {
    const { bus } = await busWith(0);
    const controller = new AbortController();
    const waiting = bus.wait({ '/chat': 0 }, ann, {
      timeoutMs: 60_000,
      signal: controller.signal,
    });
    controller.abort();
    assert.deepEqual(await waiting, []);
    assert.deepEqual(
      await bus.wait({ '/chat': 0 }, ann, {
        timeoutMs: 60_000,
        signal: controller.signal,
      }),
      [],
    );
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
  });

  it('watch catches a message published between the poll and the subscription', async () => {
    const { bus } = await busWith(1);
    const { cursor } = await bus.poll(request({ '/chat': msgId(1) }), ann);
    await bus.publish('/chat', 'raced'); // the poll's cursor is now stale
    const batches: WireMessage[][] = [];
    const watch = await bus.watch(cursor, ann, (batch) => batches.push(batch));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(batches.map(ids), [[msgId(2)]]);
    watch.close();
  });

  it('watch streams every later message once, in order, and fills gaps from the backlog', async () => {
    const store = new MemoryStore();
    let dropNotifications = false;
    const lossy = withOverrides(store, {
      subscribe: (channels, listener) =>
        store.subscribe(channels, (message) => {
          if (!dropNotifications) listener(message);
        }),
    });
    const bus = new MessageBus({
      store: lossy,
      clock: () => T,
      logger: silent,
    });
    const batches: WireMessage[][] = [];
    const watch = await bus.watch({ '/chat': 0 }, ann, (batch) =>
      batches.push(batch),
    );
    await bus.publish('/chat', 1);
    dropNotifications = true; // as when a pub/sub notification is lost
    await bus.publish('/chat', 2);
    await bus.publish('/chat', 3);
    dropNotifications = false;
    await bus.publish('/chat', 4); // reveals the gap: 2 and 3 come from the backlog
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(batches.map(ids), [
      [msgId(1)],
      [msgId(2), msgId(3), msgId(4)],
    ]);
    watch.close();
    await bus.publish('/chat', 5);
    assert.equal(batches.flat().length, 4, 'nothing after close');
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
  });

  it('shares one store subscription per channel among watches and releases it with the last one', async () => {
    const store = new MemoryStore();
    let subscribeCalls = 0;
    const counting = withOverrides(store, {
      subscribe: (channels, listener) => {
        subscribeCalls += 1;
        return store.subscribe(channels, listener);
      },
    });
    const bus = new MessageBus({ store: counting, logger: silent });
    const first = await bus.watch({ '/a': 0, '/b': 0 }, ann, () => {});
    const second = await bus.watch({ '/a': 0 }, bob, () => {});
    assert.equal(subscribeCalls, 2, 'one subscription for /a, one for /b');
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 2,
      listeners: 3,
      watches: 2,
    });
    first.close();
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 1,
      listeners: 1,
      watches: 1,
    });
    second.close();
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
  });

  it('a watch whose subscription fails rejects and leaves nothing behind', async () => {
    const failing = withOverrides(new MemoryStore(), {
      subscribe: () => Promise.reject(new Error('redis down')),
    });
    const bus = new MessageBus({ store: failing, logger: silent });
    await assert.rejects(
      bus.watch({ '/a': 0 }, ann, () => {}),
      /redis down/,
    );
    await assert.rejects(
      bus.wait({ '/a': 0 }, ann, { timeoutMs: 1000 }),
      /redis down/,
    );
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
  });

  it('close() ends every watch and subscription but leaves the store open', async () => {
    const store = new MemoryStore();
    const bus = new MessageBus({ store, logger: silent });
    await bus.watch({ '/a': 0 }, ann, () => {});
    await bus.close();
    assert.deepEqual(bus.stats(), {
      subscribedChannels: 0,
      listeners: 0,
      watches: 0,
    });
    await store.ping();
  });
});
