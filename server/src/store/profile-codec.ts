import { createHash } from 'node:crypto';

import type { PresenceUser } from '../core/types.js';

/**
 * How RedisStore stores a profile once per user (`{user|<id>}|profile`): the JSON array
 * `[username, name, avatar_template]`, the id being in the key. A third smaller than the object's JSON,
 * and the field names cannot drift from {@link PresenceUser}'s: this module is their only encoder.
 */
export function encodeProfile(user: PresenceUser): string {
  return JSON.stringify([user.username, user.name, user.avatar_template]);
}

/** The user stored as `encoded` under `id`, or `undefined` when it is not a profile this module wrote. */
export function decodeProfile(
  id: number,
  encoded: string | null,
): PresenceUser | undefined {
  if (encoded === null) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(encoded);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 3) return undefined;
  const [username, name, avatar_template] = value as unknown[];
  if (
    typeof username !== 'string' ||
    (name !== null && typeof name !== 'string') ||
    typeof avatar_template !== 'string'
  )
    return undefined;
  return { id, username, name, avatar_template };
}

/**
 * A short hash of a profile, kept by each channel the user is in, so that a present with an edited
 * profile moves the channel's state version without the profile itself being stored there. 24 bits: an
 * edit is missed (the old and new profile share a fingerprint) once in 16 million edits, and then only
 * state caches keep the old profile until the channel's next change.
 */
export function profileFingerprint(encoded: string): string {
  return createHash('sha256').update(encoded).digest('base64url').slice(0, 4);
}

/**
 * What identifies a client in a channel's clients set: 60 bits of a hash of its client id (message-bus
 * ids are 32 hex characters; the tag is 10), so the set, the largest per-client key, stays small. A tag
 * is only compared with the tags of the same user's clients: two tabs of one user collide once in 10^17,
 * and a client choosing its id could only make its own user's tabs collide.
 */
export function clientTag(clientId: string): string {
  return createHash('sha256').update(clientId).digest('base64url').slice(0, 10);
}

/**
 * The signature of a channel's publish rules as the present script stores it (info `rs`), which the
 * heartbeat script compares so it can skip the rules themselves: 48 bits of a hash of their text. Two
 * different rules sharing one (once in 10^14) would keep heartbeats on the short script until the
 * channel's next TTL refresh (at most a minute), which runs the full one.
 */
export function rulesSignature(rules: string): string {
  return createHash('sha256').update(rules).digest('base64url').slice(0, 8);
}
