/** How long and how much both stores keep: the retention options, their defaults and their checks. */
import { storeArgs } from './store-args.js';

/** How long and how much both stores keep. Every field is optional. */
export interface RetentionOptions {
  /** Messages kept per bus channel (MessageBus' default). Default 1000. */
  backlogSize?: number;
  /** A bus channel's backlog is dropped after this long without activity. Default 7 days. */
  backlogTtlMs?: number;
  /**
   * A presence channel's data is dropped after this long without activity. Default 24 hours. (RedisStore
   * refreshes the TTLs at most once a minute per channel, or every quarter of the shorter TTL: keys go
   * up to that much earlier.)
   */
  channelTtlMs?: number;
  /**
   * What is left of a presence channel once nobody is in it (its publish rules and its backlog) is
   * dropped this long after the last client left or expired, instead of after the long TTLs above.
   * Default 10 minutes: enough for a client that lost its connection for a while to catch up from the
   * backlog; one that comes back later resyncs (the ids of a new backlog jump, see firstMessageIdBase).
   */
  emptyChannelTtlMs?: number;
}

/** 1000 messages: what MessageBus keeps per channel, enough for a client that was away a few minutes. */
export const DEFAULT_BACKLOG_SIZE = 1000;
/** Backlogs live 7 days after their last message, like MessageBus' default `max_backlog_age`. */
export const DEFAULT_BACKLOG_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Presence channels are garbage-collected 24 h after their last activity (docs/protocol.md §6). */
export const DEFAULT_CHANNEL_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * An empty presence channel's rules and backlog go 10 minutes after it emptied: one user entering and
 * leaving fresh names within the rate limit otherwise left ~1.3 GB an hour behind (backlogs kept 7 days).
 */
export const DEFAULT_EMPTY_CHANNEL_TTL_MS = 10 * 60 * 1000;

/** The retention options with defaults applied; throws a TypeError naming a bad one. */
export function retention(
  options: RetentionOptions,
): Required<RetentionOptions> {
  return {
    backlogSize: storeArgs.count(
      options.backlogSize ?? DEFAULT_BACKLOG_SIZE,
      'backlogSize',
    ),
    backlogTtlMs: storeArgs.duration(
      options.backlogTtlMs ?? DEFAULT_BACKLOG_TTL_MS,
      'backlogTtlMs',
    ),
    channelTtlMs: storeArgs.duration(
      options.channelTtlMs ?? DEFAULT_CHANNEL_TTL_MS,
      'channelTtlMs',
    ),
    emptyChannelTtlMs: storeArgs.duration(
      options.emptyChannelTtlMs ?? DEFAULT_EMPTY_CHANNEL_TTL_MS,
      'emptyChannelTtlMs',
    ),
  };
}
