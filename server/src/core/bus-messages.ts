/**
 * How both stores number and shape bus messages: the `global_id` and `message_id` rules, the bus channel
 * of a presence channel and the wire shape of a message, so a MemoryStore and a RedisStore publish
 * identical messages.
 */
import type { Audience, BusMessage } from './types.js';

/**
 * `global_id` = max(previous + 1, now × 1000): strictly increasing, sorted by time across channels (it
 * runs ahead of the clock only after 1000 messages in one millisecond), and exact in a double until the
 * year 2255. MemoryStore keeps one "previous" for the whole store (so ids are unique store-wide); the
 * RedisStore keeps one per channel, because a global key cannot be updated from a per-channel script on
 * a cluster (unique and increasing per channel, time-ordered across channels).
 */
export const GLOBAL_IDS_PER_MS = 1000;

/**
 * The id before the first message of a backlog created at `now`: `now × 1000` (0 with a clock at 0, as in
 * tests). Message ids of one backlog are consecutive from `base + 1`, and a backlog created again after
 * the store lost it (Redis restarted empty, flushed, failed over to a replica that lost writes, a server
 * on the memory store restarted) starts above every id the lost one could have reached (unless it
 * averaged more than 1000 messages per millisecond over its life). A client that lived through the
 * reset polls from its old id, receives `base + 1`, which is not `old + 1`, and resyncs by itself — a
 * Discourse client too. Exact in a double until the year 2255. docs/protocol.md, "Message ids".
 */
export function firstMessageIdBase(now: number): number {
  return Math.max(0, Math.floor(now)) * GLOBAL_IDS_PER_MS;
}

/** The MessageBus channel that carries the change messages of presence channel `channel`. */
export function presenceBusChannel(channel: string): string {
  return `/presence${channel}`;
}

/**
 * The MessageBus wire shape of a message: ids, channel, data, then the audience lists that are non-empty.
 * Both stores build it this way so their messages are identical.
 */
export function buildMessage(
  globalId: number,
  messageId: number,
  channel: string,
  data: unknown,
  audience: Audience,
): BusMessage {
  const message: BusMessage = {
    global_id: globalId,
    message_id: messageId,
    channel,
    data,
  };
  if (audience.userIds?.length) message.user_ids = [...audience.userIds];
  if (audience.groupIds?.length) message.group_ids = [...audience.groupIds];
  if (audience.clientIds?.length) message.client_ids = [...audience.clientIds];
  return message;
}
