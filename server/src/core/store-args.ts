import type { PresenceStore, PublishRules } from './store.js';
import type { Audience, PresenceUser } from './types.js';

/**
 * The argument checks shared by every `PresenceStore` implementation: the core validates requests, and
 * these guard the store itself against a programming error corrupting stored state. Each throws a
 * `TypeError` that names the argument and what it must be.
 */
export const storeArgs = {
  /** A non-empty string (channel names, client ids, keys). */
  name(value: unknown, what: string): string {
    if (typeof value !== 'string' || value.length === 0) {
      throw new TypeError(
        `${what} must be a non-empty string, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A time in ms since the epoch, as passed to every store call. */
  now(value: unknown): number {
    if (
      typeof value !== 'number' ||
      !Number.isSafeInteger(value) ||
      value < 0
    ) {
      throw new TypeError(
        `now must be a non-negative integer of milliseconds, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A strictly positive duration in ms. */
  duration(value: unknown, what: string): number {
    return positiveInteger(value, what, 'a positive integer of milliseconds');
  },

  /** A user or group id. */
  id(value: unknown, what: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new TypeError(
        `${what} must be a safe integer, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A message id to read after (`backlog`); any integer, negative ones mean "everything". */
  afterId(value: unknown): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new TypeError(
        `afterId must be an integer message id, got ${describe(value)}`,
      );
    }
    return value;
  },

  /** A user reduced to exactly the four fields messages and state carry. */
  user(value: unknown): PresenceUser {
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(
        `user must be an object {id, username, name, avatar_template}, got ${describe(value)}`,
      );
    }
    const user = value as Record<string, unknown>;
    const id = storeArgs.id(user['id'], 'user.id');
    if (typeof user['username'] !== 'string') {
      throw new TypeError(
        `user.username must be a string, got ${describe(user['username'])}`,
      );
    }
    const name = user['name'] ?? null;
    if (name !== null && typeof name !== 'string') {
      throw new TypeError(
        `user.name must be a string or null, got ${describe(name)}`,
      );
    }
    if (typeof user['avatar_template'] !== 'string') {
      throw new TypeError(
        `user.avatar_template must be a string, got ${describe(user['avatar_template'])}`,
      );
    }
    return {
      id,
      username: user['username'],
      name,
      avatar_template: user['avatar_template'],
    };
  },

  /** Publish rules; `audience: null` means nobody may view. */
  rules(value: unknown): PublishRules {
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(
        `rules must be {countOnly, audience}, got ${describe(value)}`,
      );
    }
    const rules = value as Record<string, unknown>;
    if (typeof rules['countOnly'] !== 'boolean') {
      throw new TypeError(
        `rules.countOnly must be a boolean, got ${describe(rules['countOnly'])}`,
      );
    }
    const audience =
      rules['audience'] === null ? null : storeArgs.audience(rules['audience']);
    const shown = rules['maxUsersShown'];
    // Normalised: a limit only where it limits something (a count-only channel lists nobody).
    if (shown === undefined || shown === null || rules['countOnly'])
      return { countOnly: rules['countOnly'], audience };
    return {
      countOnly: rules['countOnly'],
      audience,
      maxUsersShown: positiveInteger(
        shown,
        'rules.maxUsersShown',
        'a positive integer or null',
      ),
    };
  },

  /** An audience with its lists checked and empty lists dropped (an empty list is the same as absent). */
  audience(value: unknown): Audience {
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(
        `audience must be {userIds?, groupIds?, clientIds?}, got ${describe(value)}`,
      );
    }
    const input = value as Record<string, unknown>;
    const audience: Audience = {};
    const userIds = idList(input['userIds'], 'audience.userIds');
    const groupIds = idList(input['groupIds'], 'audience.groupIds');
    const clientIds = stringList(input['clientIds'], 'audience.clientIds');
    if (userIds) audience.userIds = userIds;
    if (groupIds) audience.groupIds = groupIds;
    if (clientIds) audience.clientIds = clientIds;
    return audience;
  },

  /** Message data, which must survive a JSON round trip (the Redis store stores JSON). */
  data(value: unknown): string {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      throw new TypeError(
        `message data must be JSON-serializable: ${String(error)}`,
      );
    }
    if (json === undefined) {
      throw new TypeError(
        `message data must be JSON-serializable, got ${describe(value)}`,
      );
    }
    return json;
  },

  /** A backlog size. */
  count(value: unknown, what: string): number {
    return positiveInteger(value, what, 'a positive integer');
  },

  /** A size where 0 means "none": a non-negative integer. */
  size(value: unknown, what: string): number {
    if (value === 0) return 0;
    return positiveInteger(value, what, 'a non-negative integer');
  },

  /** An optional rate limit: a positive integer, or absent/Infinity for "just count". */
  limit(value: unknown): number {
    if (value === undefined || value === Infinity) return Infinity;
    if (
      typeof value !== 'number' ||
      !Number.isSafeInteger(value) ||
      value <= 0
    ) {
      throw new TypeError(
        `limit must be a positive integer, got ${describe(value)}`,
      );
    }
    return value;
  },
};

/**
 * The argument checks of each store operation, so both stores reject the same calls the same way. Each
 * returns the checked values the store goes on with.
 */
export const checkStoreCall = {
  /** `maxUsers` comes back as `null` when there is no limit. */
  present(
    ...[channel, user, clientId, timeoutMs, rules, now, maxUsers]: Parameters<
      PresenceStore['present']
    >
  ): { user: PresenceUser; rules: PublishRules; maxUsers: number | null } {
    storeArgs.name(channel, 'channel');
    const member = storeArgs.user(user);
    storeArgs.name(clientId, 'clientId');
    storeArgs.duration(timeoutMs, 'timeoutMs');
    const checked = storeArgs.rules(rules);
    storeArgs.now(now);
    const max =
      maxUsers === undefined || maxUsers === null
        ? null
        : positiveInteger(maxUsers, 'maxUsers', 'a positive integer or null');
    return { user: member, rules: checked, maxUsers: max };
  },

  leave(
    ...[channel, userId, clientId, rules, now]: Parameters<
      PresenceStore['leave']
    >
  ): PublishRules | null {
    storeArgs.name(channel, 'channel');
    storeArgs.id(userId, 'userId');
    storeArgs.name(clientId, 'clientId');
    const checked = rules === null ? null : storeArgs.rules(rules);
    storeArgs.now(now);
    return checked;
  },

  /** `state` and `getConfig`. */
  read(channel: string, now: number): void {
    storeArgs.name(channel, 'channel');
    storeArgs.now(now);
  },

  publish(
    ...[channel, data, audience, now]: Parameters<PresenceStore['publish']>
  ): { dataJson: string; audience: Audience } {
    storeArgs.name(channel, 'channel');
    const dataJson = storeArgs.data(data);
    const checked = storeArgs.audience(audience);
    storeArgs.now(now);
    return { dataJson, audience: checked };
  },

  backlog(channel: string, afterId: number, limit?: number): void {
    storeArgs.name(channel, 'channel');
    storeArgs.afterId(afterId);
    if (limit !== undefined) storeArgs.count(limit, 'limit');
  },

  /** Returns the config as JSON. */
  setConfig(
    ...[channel, config, ttlMs, now]: Parameters<PresenceStore['setConfig']>
  ): string {
    storeArgs.name(channel, 'channel');
    storeArgs.duration(ttlMs, 'ttlMs');
    const json = storeArgs.data(config);
    storeArgs.now(now);
    return json;
  },

  claimChannels(
    ...[userId, present, leaving, cap, untilMs, now]: Parameters<
      PresenceStore['claimChannels']
    >
  ): void {
    storeArgs.id(userId, 'userId');
    for (const name of [...present, ...leaving])
      storeArgs.name(name, 'channel');
    storeArgs.count(cap, 'cap');
    storeArgs.now(untilMs);
    storeArgs.now(now);
  },

  /** Returns the limit (`Infinity` when absent). */
  hit(key: string, windowMs: number, now: number, limit?: number): number {
    storeArgs.name(key, 'key');
    storeArgs.duration(windowMs, 'windowMs');
    const max = storeArgs.limit(limit);
    storeArgs.now(now);
    return max;
  },
};

function positiveInteger(
  value: unknown,
  what: string,
  expected: string,
): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${what} must be ${expected}, got ${describe(value)}`);
  }
  return value;
}

function idList(value: unknown, what: string): number[] | undefined {
  return list(value, what, 'ids', (id, at) => storeArgs.id(id, at));
}

function stringList(value: unknown, what: string): string[] | undefined {
  return list(value, what, 'strings', (item, at) => storeArgs.name(item, at));
}

/** A checked list, or `undefined` for an absent or empty one (an empty list is the same as absent). */
function list<T>(
  value: unknown,
  what: string,
  items: string,
  check: (item: unknown, what: string) => T,
): T[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) {
    throw new TypeError(
      `${what} must be an array of ${items}, got ${describe(value)}`,
    );
  }
  const checked = value.map((item, i) => check(item, `${what}[${i}]`));
  return checked.length > 0 ? checked : undefined;
}

function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}
