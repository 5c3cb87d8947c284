import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { Redis } from 'ioredis';

import { RedisStore } from '../src/store/redis-store.js';
import { checkReply } from '../src/store/scripts.js';

const T = 1_764_000_000_000;

describe('Lua script replies', () => {
  it('passes every reply shape the scripts document through unchanged', () => {
    const user = JSON.stringify({ id: 1 });
    const replies = [
      ['present', [1, '{"message_id":1}', null, 0, 1, 1, 2]],
      ['present', [0, null, String(T), 0, 0, 0, 0]],
      ['present', [0, null, null, 1, 0, 0, 0]],
      ['leave', [0, null, 0, 0, 0]],
      ['leave', [1, '{"message_id":2}', 1, 1, 2]],
      ['sweep', [2, null, '{"message_id":2}', String(T), 1, 3]],
      ['sweep', [0, String(T), null, null, 0, 0]],
      ['state', [0, 0, null]],
      ['state', [2, 7, '1700000000000001']],
      ['state', [2, 7, '1700000000000001', user, user]],
      ['publish', '{"message_id":3}'],
      ['rescore', 0],
      ['lease', 1],
      ['hit', [1, String(T)]],
      ['claim', []],
      ['claim', ['/a', '/b']],
    ] as const;
    for (const [name, reply] of replies) {
      assert.equal(checkReply(name, reply), reply, name);
    }
  });

  it('throws an Error naming the script and what is wrong with a malformed reply', () => {
    const malformed = [
      [
        'present',
        [2, null, null, 0, 0, 0, 0],
        'server/lua/presence-present.lua answered an unexpected reply: element 0: 2 is not 0 or 1 ' +
          '(expected an array [0 or 1, a string or nil, a string or nil, 0 or 1, 0 or 1, 0 or 1, an integer])',
      ],
      [
        'leave',
        [1],
        'server/lua/presence-leave.lua answered an unexpected reply: it has 1 elements, not an array ' +
          '[0 or 1, a string or nil, 0 or 1, 0 or 1, an integer]',
      ],
      [
        'sweep',
        [0, 12, null, null, 0, 0],
        'server/lua/presence-sweep.lua answered an unexpected reply: element 1: 12 is not a string or nil',
      ],
      [
        'state',
        [1, 5, '9', 42],
        'server/lua/presence-state.lua answered an unexpected reply: element 3: 42 is not a string ' +
          '(expected an array [an integer, an integer, a string or nil, ...a string])',
      ],
      [
        'publish',
        null,
        'server/lua/bus-publish.lua answered an unexpected reply: null is not a string',
      ],
      [
        'hit',
        'OK',
        'server/lua/rate-limit-hit.lua answered an unexpected reply: "OK" is not an array [an integer, a string]',
      ],
      [
        'claim',
        ['/a', 1],
        'server/lua/user-channels-claim.lua answered an unexpected reply: element 1: 1 is not a string',
      ],
      [
        'rescore',
        [1],
        'server/lua/sweep-index-rescore.lua answered an unexpected reply: [1] is not 0 or 1',
      ],
    ] as const;
    for (const [name, reply, message] of malformed) {
      assert.throws(
        () => checkReply(name, reply),
        (error: unknown) =>
          error instanceof Error && error.message.startsWith(message),
        name,
      );
    }
  });

  it('keeps the error short for a long reply', () => {
    const reply = [1, 2, '9', ...Array.from({ length: 10_000 }, () => 'x'), 3];
    assert.throws(
      () => checkReply('state', reply),
      (error: unknown) =>
        error instanceof Error &&
        error.message.includes('element 10003: 3 is not a string') &&
        error.message.length < 300,
    );
  });

  it('a RedisStore rejects an operation whose script answers a malformed reply', async () => {
    // A stand-in connection whose every script answers the same wrong thing.
    const connection = {
      options: {},
      defineCommand(name: string): void {
        (this as Record<string, unknown>)[name] = () =>
          Promise.resolve(['1', 0]);
      },
    } as unknown as Redis;
    const store = new RedisStore(connection);
    try {
      await assert.rejects(
        store.state('/site/online', true, T),
        new Error(
          'server/lua/presence-state.lua answered an unexpected reply: it has 2 elements, not an array ' +
            '[an integer, an integer, a string or nil, ...a string] (expected an array [an integer, an ' +
            'integer, a string or nil, ...a string])',
        ),
      );
      await assert.rejects(
        store.hit('k', 1000, T),
        /rate-limit-hit\.lua answered an unexpected reply: element 0: "1" is not an integer/,
      );
    } finally {
      await store.close();
    }
  });
});
