import { dedupeById, isRecord, toUsers } from './apply-snapshot';
import { detectGap, type Gap } from './detect-gap';
import type { ChannelData } from './types';

/** What folding one change message into `ChannelData` produced. */
export type MessageOutcome =
  | { readonly type: 'applied'; readonly data: ChannelData }
  | { readonly type: 'gap'; readonly gap: Gap }
  | { readonly type: 'unexpected'; readonly reason: string }
  | { readonly type: 'resync' };

const CHANGE_KEYS = [
  'entering_users',
  'leaving_user_ids',
  'count_delta',
] as const;

/**
 * Folds change message `messageId` into `data` (docs/protocol.md §5). Pure: returns a new object and never
 * mutates.
 *
 * - On a users channel a message has any non-empty combination of `entering_users` (added, deduplicated
 *   by id), then `leaving_user_ids` (removed), and `count_delta`. The users are the shown ones, which on a
 *   channel with `maxUsersShown` can be fewer than `count`, so the count moves by `count_delta` when the
 *   message has it, and otherwise by as many users as the list gained or lost (keeping `count` equal to
 *   `users.length` on a channel without the cap).
 * - On a count-only channel the only message is `{"count_delta":n}`.
 * - `{"resync":true}` is the server asking for a refetch (the channel's `maxUsersShown` changed): `resync`.
 * - An id other than `data.lastMessageId + 1` is a `gap`.
 * - Anything else — unknown or malformed keys, users on a count-only channel, a count going negative or
 *   below the number of users listed — is `unexpected`. The caller refetches on a gap, a resync and anything
 *   unexpected, because a refetch is always safe and a guess is not.
 *
 * @example
 * applyMessage({ users: [ann], count: 7, lastMessageId: 4 }, 5, {
 *   entering_users: [bob],
 *   leaving_user_ids: [ann.id],
 *   count_delta: -1,
 * });
 * // { type: 'applied', data: { users: [bob], count: 6, lastMessageId: 5 } }
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

  if ('resync' in payload) {
    return Object.keys(payload).length === 1 && payload['resync'] === true
      ? { type: 'resync' }
      : { type: 'unexpected', reason: 'resync is not exactly {"resync":true}' };
  }

  const kinds = CHANGE_KEYS.filter((key) => key in payload);
  if (kinds.length === 0) {
    return { type: 'unexpected', reason: 'payload has no known change key' };
  }

  let delta: number | undefined;
  if ('count_delta' in payload) {
    const raw = payload['count_delta'];
    if (typeof raw !== 'number' || !Number.isInteger(raw)) {
      return { type: 'unexpected', reason: 'count_delta is not an integer' };
    }
    delta = raw;
  }

  if (data.users === null) {
    if (kinds.length !== 1 || delta === undefined) {
      return {
        type: 'unexpected',
        reason: `${kinds.filter((kind) => kind !== 'count_delta').join(' and ')} on a count-only channel`,
      };
    }
    const count = data.count + delta;
    if (count < 0)
      return { type: 'unexpected', reason: `count would become ${count}` };
    return {
      type: 'applied',
      data: { users: null, count, lastMessageId: messageId },
    };
  }

  let users = data.users;
  if ('entering_users' in payload) {
    const entering = toUsers(payload['entering_users']);
    if (!entering)
      return {
        type: 'unexpected',
        reason: 'entering_users is not a list of users',
      };
    users = dedupeById([...users, ...entering]);
  }
  if ('leaving_user_ids' in payload) {
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
    users = users.filter((user) => !leaving.has(user.id));
  }

  // Without count_delta, what the list gained or lost rather than the lengths of the message's lists: a
  // duplicate entering user or an unknown leaving id then cannot move the count away from the list.
  const count = data.count + (delta ?? users.length - data.users.length);
  if (count < users.length) {
    return {
      type: 'unexpected',
      reason: `count would become ${count} with ${users.length} users listed`,
    };
  }
  return {
    type: 'applied',
    data: { users, count, lastMessageId: messageId },
  };
}
