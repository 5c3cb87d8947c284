/**
 * The MessageBus protocol core (docs/protocol.md §6), free of Node APIs so the in-browser fake server runs the same
 * code as the real one: request parsing, id rules, audience filtering, wire shapes, and the
 * {@link MessageBus} class that answers and follows polls over a `PresenceStore`, and the {@link PollHandler}
 * that speaks `POST /message-bus/<clientId>/poll` for every transport (holds, streams, caps, status codes).
 */
export {
  isAudienceMember,
  normaliseAudience,
  type BusRequester,
} from './audience.js';
export {
  DEFAULT_MAX_BYTES_PER_POLL,
  DEFAULT_MAX_MESSAGES_PER_POLL,
  MessageBus,
  type BusWatch,
  type MessageBusOptions,
  type MessageBusStats,
  type PollResult,
  type WaitOptions,
} from './message-bus.js';
export {
  DEFAULT_MAX_POLL_CHANNELS,
  MAX_BUS_CHANNEL_LENGTH,
  SEQ_FIELD,
  isValidBusChannel,
  parsePollBody,
  parsePollFields,
  type LastSeenId,
  type PollLimits,
  type PollPosition,
  type PollRequest,
} from './poll-request.js';
export {
  DEFAULT_LONG_POLL_MS,
  DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER,
  DEFAULT_MAX_HELD_POLLS,
  DEFAULT_MAX_HELD_POLLS_PER_PEER,
  NO_CACHE_HEADERS,
  PollHandler,
  integerOption,
  type ChunkSink,
  type HeldPollAnswer,
  type PollAnswer,
  type PollHandlerOptions,
  type PollHandlerStats,
  type PollHttpRequest,
  type PollResponse,
  type PollStream,
} from './poll-handler.js';
export { addressKey, peerKey } from './peer-key.js';
export { presenceChannelAccess } from './presence-access.js';
export { publishHostMessage } from './publish.js';
export {
  SubscriptionHub,
  type SubscriptionHubStats,
} from './subscription-hub.js';
export {
  CHUNK_SEPARATOR,
  ESCAPED_CHUNK_SEPARATOR,
  STATUS_CHANNEL,
  decodeChunks,
  encodeChunk,
  escapeChunk,
  statusMessage,
  toWireMessage,
  type WireMessage,
} from './wire.js';
