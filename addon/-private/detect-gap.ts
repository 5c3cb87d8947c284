/** A message id that does not follow the last one applied: something was missed (or replayed). */
export interface Gap {
  /** The id that arrived. */
  readonly received: number;
  /** The id that should have arrived (`lastSeenId + 1`). */
  readonly expected: number;
}

/**
 * A backlog's first message id is `base + 1`, where the server picks `base` as a multiple of this (its
 * creation time × 1000; 0 on servers that start at 1). docs/protocol.md, "Message ids". The server's
 * `GLOBAL_IDS_PER_MS` is the same number (a server test checks it).
 */
export const FIRST_MESSAGE_ID_STEP = 1000;

/**
 * Channel message ids are consecutive (docs/protocol.md §5), so anything but `lastSeenId + 1` means the client's
 * view can no longer be trusted and must be refetched. That includes ids *below* the expected one: they
 * show up after the server's backlog was reset, and ignoring them would leave the channel frozen.
 *
 * `lastSeenId` 0 means the snapshot had no message at all (`last_message_id: null`): the next message is
 * the first of a new backlog, whose id is `base + 1` for a base the client cannot know, so any id of that
 * form is accepted.
 *
 * @example
 * detectGap(4, 5); // null
 * detectGap(4, 7); // { received: 7, expected: 5 }
 * detectGap(0, 1_764_000_000_000_001); // null: the first message of a backlog created at that time
 */
export function detectGap(lastSeenId: number, messageId: number): Gap | null {
  const expected = lastSeenId + 1;
  if (messageId === expected) return null;
  if (lastSeenId === 0 && messageId % FIRST_MESSAGE_ID_STEP === 1) return null;
  return { received: messageId, expected };
}

/**
 * The log line written when a gap is found. Kept byte-for-byte identical to Discourse's so existing log
 * searches and alerts keep working.
 */
export function gapLogLine(channelName: string, gap: Gap): string {
  return `PresenceChannel '${channelName}' dropped message (received ${gap.received}, expecting ${gap.expected}), resyncing...`;
}
