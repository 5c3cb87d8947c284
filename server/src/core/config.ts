import type { ChannelConfig } from './types.js';

/**
 * Validation and defaults for what prefix callbacks return (docs/protocol.md §1). The registry calls
 * {@link normalizeChannelConfig} on every callback result; anything it rejects is a server error for that
 * channel (logged, channel treated as not found), never a half-understood config.
 */

/** Seconds without a "present" before a client is removed, when the config does not say. */
export const DEFAULT_TIMEOUT_SECONDS = 60;

/**
 * Largest accepted `timeout`, in seconds. Channel data is garbage-collected 24 h after its last activity,
 * so a longer timeout could never be honoured.
 */
export const MAX_TIMEOUT_SECONDS = 24 * 60 * 60;

/** How long a callback result (including "not found") stays cached, when not configured: 2 minutes. */
export const DEFAULT_CONFIG_TTL_MS = 2 * 60 * 1000;

const CONFIG_KEYS = [
  'public',
  'allowedUserIds',
  'allowedGroupIds',
  'countOnly',
  'timeout',
  'maxUsers',
  'maxUsersShown',
] as const;

/** A prefix callback returned something that is neither `null` nor a valid config. */
export class ChannelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelConfigError';
  }
}

function optionalBoolean(input: Record<string, unknown>, key: string): boolean {
  const value = input[key];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') {
    throw new ChannelConfigError(
      `\`${key}\` must be a boolean, got ${describe(value)}`,
    );
  }
  return value;
}

function optionalIdList(
  input: Record<string, unknown>,
  key: string,
): readonly number[] | null {
  const value = input[key];
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value)) {
    throw new ChannelConfigError(
      `\`${key}\` must be an array of integer ids, got ${describe(value)}`,
    );
  }
  const ids = new Set<number>();
  for (const id of value as unknown[]) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
      throw new ChannelConfigError(
        `\`${key}\` must contain only integer ids, got ${describe(id)}`,
      );
    }
    ids.add(id);
  }
  // An empty list grants nothing and restricts nothing, exactly like an absent one (docs/protocol.md §5).
  return ids.size === 0 ? null : Object.freeze([...ids]);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'number') return String(value);
  return `a value of type ${typeof value}`;
}

/**
 * Validates a prefix callback's config and fills in the defaults. Throws {@link ChannelConfigError}
 * naming the problem for anything that is not a plain object with known, well-typed fields.
 *
 * @example
 * normalizeChannelConfig({ allowedGroupIds: [3] })
 * // { public: false, allowedUserIds: null, allowedGroupIds: [3], countOnly: false, timeout: 60 }
 */
export function normalizeChannelConfig(input: unknown): ChannelConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ChannelConfigError(
      `a prefix callback must return a config object or null, got ${describe(input)}`,
    );
  }
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    // Strict on purpose: a typo such as `allowedUserIDs` would otherwise silently lock everyone out.
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new ChannelConfigError(
        `unknown config key ${JSON.stringify(key.slice(0, 40))} (expected one of ${CONFIG_KEYS.join(', ')})`,
      );
    }
  }
  let timeout = DEFAULT_TIMEOUT_SECONDS;
  if (record['timeout'] !== undefined && record['timeout'] !== null) {
    const value = record['timeout'];
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value <= 0 ||
      value > MAX_TIMEOUT_SECONDS
    ) {
      throw new ChannelConfigError(
        `\`timeout\` must be a number of seconds > 0 and <= ${MAX_TIMEOUT_SECONDS}, got ${describe(value)}`,
      );
    }
    timeout = value;
  }
  const config: ChannelConfig = {
    public: optionalBoolean(record, 'public'),
    allowedUserIds: optionalIdList(record, 'allowedUserIds'),
    allowedGroupIds: optionalIdList(record, 'allowedGroupIds'),
    countOnly: optionalBoolean(record, 'countOnly'),
    timeout,
  };
  const maxUsers = optionalLimit(
    record,
    'maxUsers',
    'the most distinct users present at once',
  );
  if (maxUsers !== null) config.maxUsers = maxUsers;
  const maxUsersShown = optionalLimit(
    record,
    'maxUsersShown',
    'the most users state and messages list',
  );
  // A count-only channel lists nobody: the limit has nothing to limit.
  if (maxUsersShown !== null && !config.countOnly)
    config.maxUsersShown = maxUsersShown;
  return config;
}

/**
 * `maxUsers` / `maxUsersShown`: absent/null (no limit) or a positive safe integer; anything else is a
 * config error that says what the limit is.
 */
function optionalLimit(
  input: Record<string, unknown>,
  key: 'maxUsers' | 'maxUsersShown',
  meaning: string,
): number | null {
  const value = input[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ChannelConfigError(
      `\`${key}\` must be a positive integer (${meaning}), got ${describe(value)}`,
    );
  }
  return value;
}
