import type { Audience, BusMessage, CurrentUser } from '../types.js';

/**
 * Who is polling: the MessageBus client id of the tab and the user behind the request (from the same
 * `currentUser(req)` hook as the presence endpoints), or `null` for an anonymous visitor.
 */
export interface BusRequester {
  clientId: string;
  user: Pick<CurrentUser, 'id' | 'groupIds'> | null;
}

function listed<T>(
  list: readonly T[] | null | undefined,
): list is readonly T[] {
  return Array.isArray(list) && list.length > 0;
}

/**
 * May `requester` receive `message`? docs/protocol.md §6: (no `client_ids`, or its client id is listed) AND (no user or
 * group lists, or its user id is in `user_ids`, or one of its groups is in `group_ids`). Empty lists count
 * as absent. Anonymous visitors only receive messages without user/group lists.
 *
 * @example
 * isAudienceMember({ ...msg, user_ids: [1], group_ids: [10] }, { clientId: 'c', user: { id: 2, groupIds: [10] } })
 * // → true (group match)
 */
export function isAudienceMember(
  message: Pick<BusMessage, 'user_ids' | 'group_ids' | 'client_ids'>,
  requester: BusRequester,
): boolean {
  if (
    listed(message.client_ids) &&
    !message.client_ids.includes(requester.clientId)
  )
    return false;
  const userIds = message.user_ids;
  const groupIds = message.group_ids;
  if (!listed(userIds) && !listed(groupIds)) return true;
  const user = requester.user;
  if (!user) return false;
  if (listed(userIds) && userIds.includes(user.id)) return true;
  if (!listed(groupIds)) return false;
  // `groupIds` comes from host code; a missing list must mean "no groups", not a crash.
  const groups: readonly unknown[] = Array.isArray(user.groupIds)
    ? user.groupIds
    : [];
  return groups.some(
    (group) => typeof group === 'number' && groupIds.includes(group),
  );
}

/**
 * Validates and normalises the audience host code passes to `publish`: arrays of integers (user and group
 * ids) and non-empty strings (client ids); `null`, `undefined` and empty lists mean "no restriction".
 * Throws a `TypeError` naming the bad field, because a silently widened audience would leak a message.
 */
export function normaliseAudience(
  audience: Audience | null | undefined,
): Audience {
  if (audience === null || audience === undefined) return {};
  if (typeof audience !== 'object') {
    throw new TypeError(
      'publish: the audience must be an object like { userIds, groupIds, clientIds }',
    );
  }
  const out: Audience = {};
  const userIds = integerList(audience.userIds, 'userIds');
  const groupIds = integerList(audience.groupIds, 'groupIds');
  const clientIds = stringList(audience.clientIds, 'clientIds');
  if (userIds) out.userIds = userIds;
  if (groupIds) out.groupIds = groupIds;
  if (clientIds) out.clientIds = clientIds;
  return out;
}

function integerList(value: unknown, name: string): number[] | null {
  if (value === null || value === undefined) return null;
  if (!Array.isArray(value) || !value.every((id) => Number.isSafeInteger(id))) {
    throw new TypeError(
      `publish: ${name} must be an array of integer ids (or null)`,
    );
  }
  return value.length > 0 ? [...new Set(value as number[])] : null;
}

function stringList(value: unknown, name: string): string[] | null {
  if (value === null || value === undefined) return null;
  if (
    !Array.isArray(value) ||
    !value.every((id) => typeof id === 'string' && id.length > 0)
  ) {
    throw new TypeError(
      `publish: ${name} must be an array of non-empty strings (or null)`,
    );
  }
  return value.length > 0 ? [...new Set(value as string[])] : null;
}
