import assert from 'node:assert/strict';

import { firstMessageIdBase } from '../../src/core/bus-messages.js';

/**
 * The message ids of a backlog created at clock time `createdAt`: `messageIds(createdAt)(n)` is the id of
 * its n-th message, `firstMessageIdBase(createdAt) + n` (a backlog's ids are consecutive from base + 1;
 * with a clock at 0 they are 1, 2, …). `n` may be 0 (the id before the first message) or beyond the last
 * message (an id the channel has not reached).
 *
 * @example
 * const msgId = messageIds(T); // every backlog of the test is created at T
 * assert.equal(first.message?.message_id, msgId(1));
 */
export function messageIds(createdAt: number): (n: number) => number {
  const base = firstMessageIdBase(createdAt);
  return (n: number) => base + n;
}

/**
 * For a server on the real clock, where the test only knows that a backlog was created between `from` and
 * `to` (`Date.now()` read before and after the request that created it): asserts that `actual` is exactly
 * the n-th id of a backlog created at some millisecond of that window, `firstMessageIdBase(t) + n` with
 * `from <= t <= to`. Returns `actual`.
 */
export function assertNthMessageId(
  actual: unknown,
  n: number,
  window: { from: number; to: number },
  message = 'message id',
): number {
  assert.ok(
    typeof actual === 'number' && Number.isSafeInteger(actual),
    `${message}: ${String(actual)} is not an integer id`,
  );
  // The base grows by firstMessageIdBase(1) per millisecond: invert it, then check the inverse exactly.
  const createdAt = (actual - n) / firstMessageIdBase(1);
  assert.ok(
    Number.isSafeInteger(createdAt) &&
      firstMessageIdBase(createdAt) + n === actual &&
      createdAt >= window.from &&
      createdAt <= window.to,
    `${message}: ${actual} is not id #${n} of a backlog created between ${window.from} and ${window.to} ms ` +
      `(${firstMessageIdBase(window.from) + n} … ${firstMessageIdBase(window.to) + n}, in steps of ${firstMessageIdBase(1)})`,
  );
  return actual;
}
