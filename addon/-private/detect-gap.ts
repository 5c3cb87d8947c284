/** A message id that does not follow the last one applied: something was missed (or replayed). */
export interface Gap {
  /** The id that arrived. */
  readonly received: number;
  /** The id that should have arrived (`lastSeenId + 1`). */
  readonly expected: number;
}

/**
 * Channel message ids are consecutive (SPEC §2.2), so anything but `lastSeenId + 1` means the client's
 * view can no longer be trusted and must be refetched. That includes ids *below* the expected one: they
 * show up after the server's backlog was reset, and ignoring them would leave the channel frozen.
 *
 * @example
 * detectGap(4, 5); // null
 * detectGap(4, 7); // { received: 7, expected: 5 }
 */
export function detectGap(lastSeenId: number, messageId: number): Gap | null {
  const expected = lastSeenId + 1;
  return messageId === expected ? null : { received: messageId, expected };
}

/**
 * The log line written when a gap is found. Kept byte-for-byte identical to Discourse's so existing log
 * searches and alerts keep working.
 */
export function gapLogLine(channelName: string, gap: Gap): string {
  return `PresenceChannel '${channelName}' dropped message (received ${gap.received}, expecting ${gap.expected}), resyncing...`;
}
