import { dedupeById, isRecord, toUsers } from './apply-snapshot';
import { detectGap, type Gap } from './detect-gap';
import type { ChannelData } from './types';

/** What folding one change message into `ChannelData` produced. */
export type MessageOutcome =
  | { readonly type: 'applied'; readonly data: ChannelData }
  | { readonly type: 'gap'; readonly gap: Gap }
  | { readonly type: 'unexpected'; readonly reason: string };

/**
 * Folds change message `messageId` into `data` (docs/protocol.md §7). Pure: returns a new object and never mutates.
 *
 * - `{"entering_users":[…]}` adds users (deduplicated by id), `{"leaving_user_ids":[…]}` removes them,
 *   `{"count_delta":n}` adjusts a count-only channel.
 * - An id other than `data.lastMessageId + 1` is a `gap`.
 * - Anything else — a payload that is not exactly one of those shapes, a users message on a count-only
 *   channel or the reverse, a count going negative — is `unexpected`. The caller refetches in both cases,
 *   because a refetch is always safe and a guess is not.
 *
 * @example
 * applyMessage({ users: [], count: 0, lastMessageId: 0 }, 1, { entering_users: [ann] });
 * // { type: 'applied', data: { users: [ann], count: 1, lastMessageId: 1 } }
 */
export function applyMessage(
  data: ChannelData,
  messageId: number,
  payload: unknown,
): MessageOutcome {
  if (typeof messageId !== 'number' || !Number.isInteger(messageId)) {
    return {
      type: 'unexpected',
      reason: `message id ${String(messageId)} is not an integer`,
    };
  }
  const gap = detectGap(data.lastMessageId, messageId);
  if (gap) return { type: 'gap', gap };
  if (!isRecord(payload))
    return { type: 'unexpected', reason: 'payload is not an object' };

  const kinds = (
    ['entering_users', 'leaving_user_ids', 'count_delta'] as const
  ).filter((key) => key in payload);
  if (kinds.length !== 1) {
    return {
      type: 'unexpected',
      reason: `payload has ${kinds.length} known change keys, expected 1`,
    };
  }

  const kind = kinds[0]!;
  if (kind === 'count_delta') {
    const delta = payload['count_delta'];
    if (data.users !== null)
      return {
        type: 'unexpected',
        reason: 'count_delta on a channel with users',
      };
    if (typeof delta !== 'number' || !Number.isInteger(delta)) {
      return { type: 'unexpected', reason: 'count_delta is not an integer' };
    }
    const count = data.count + delta;
    if (count < 0)
      return { type: 'unexpected', reason: `count would become ${count}` };
    return {
      type: 'applied',
      data: { users: null, count, lastMessageId: messageId },
    };
  }

  if (data.users === null)
    return { type: 'unexpected', reason: `${kind} on a count-only channel` };

  if (kind === 'entering_users') {
    const entering = toUsers(payload['entering_users']);
    if (!entering)
      return {
        type: 'unexpected',
        reason: 'entering_users is not a list of users',
      };
    const users = dedupeById([...data.users, ...entering]);
    return {
      type: 'applied',
      data: { users, count: users.length, lastMessageId: messageId },
    };
  }

  const ids = payload['leaving_user_ids'];
  if (
    !Array.isArray(ids) ||
    !(ids as unknown[]).every((id) => typeof id === 'number')
  ) {
    return {
      type: 'unexpected',
      reason: 'leaving_user_ids is not a list of numbers',
    };
  }
  const leaving = new Set(ids as number[]);
  const users = data.users.filter((user) => !leaving.has(user.id));
  return {
    type: 'applied',
    data: { users, count: users.length, lastMessageId: messageId },
  };
}
