import type {
  PendingEvents,
  PresenceEvent,
  PresenceEventName,
} from '../store.js';

/**
 * How the event index is kept, shared by every store (one copy of the rule).
 *
 * A writer indexes a channel (score = now) BEFORE the state change that may record events in the
 * channel's outbox, and a consumer that found the outbox empty does not drop the channel at once: it
 * schedules one more visit {@link EVENT_INDEX_GRACE_MS} later, marked by a half millisecond (writers
 * write whole milliseconds), and drops the entry only if that marked visit finds the outbox still empty.
 * Any writer that indexed the channel before the first empty visit has run its change within the grace
 * period (or died without changing anything), and any later writer replaced the mark, so no recorded event
 * is ever left without an index entry.
 */
export const EVENT_INDEX_GRACE_MS = 60_000;

/** The next index score of a visited channel, or `null` to drop it from the index. */
export function nextVisit(
  visited: number,
  hadEvents: boolean,
  now: number,
): number | null {
  if (hadEvents) return now; // more may have come meanwhile: look again on the next round
  if (visited % 1 === 0.5) return null; // the marked second look found nothing either
  return now + EVENT_INDEX_GRACE_MS + 0.5;
}

/** One-letter codes of event names in a store's outbox. */
const NAMES: Record<string, PresenceEventName> = {
  o: 'channel_occupied',
  a: 'member_added',
  r: 'member_removed',
  v: 'channel_vacated',
};

/** The code of an event name (the inverse of the table above). */
export const EVENT_CODES: Record<PresenceEventName, string> = {
  channel_occupied: 'o',
  member_added: 'a',
  member_removed: 'r',
  channel_vacated: 'v',
};

/** The id of event number `seq` of `channel`: unique in the deployment, the same on every delivery. */
export function eventId(channel: string, seq: number): string {
  return `${seq}@${channel}`;
}

/**
 * Decodes outbox entries `"<seq>|<code>|<userId>|<at>"` of `channel` (presence-*.lua, recordEvents) into
 * pending events. An entry that does not decode (written by a future version?) is skipped, but still
 * acknowledged with the others, so it can never block the channel.
 */
export function decodeOutbox(
  channel: string,
  visited: number,
  entries: readonly string[],
): PendingEvents {
  const events: PresenceEvent[] = [];
  let lastSeq = 0;
  for (const entry of entries) {
    const [seqText, code, userText, atText] = entry.split('|');
    const seq = Number(seqText);
    if (Number.isSafeInteger(seq) && seq > lastSeq) lastSeq = seq;
    const name = code === undefined ? undefined : NAMES[code];
    const userId = Number(userText);
    const at = Number(atText);
    if (!name || !Number.isSafeInteger(userId) || !Number.isFinite(at))
      continue;
    events.push({ id: eventId(channel, seq), name, channel, userId, at });
  }
  return { channel, visited, events, lastSeq };
}
