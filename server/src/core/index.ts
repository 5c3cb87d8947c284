/**
 * The server core as one module: the entry that `scripts/build-core.cjs` bundles into
 * `ember-presence/test-support/-private/core`, so the test-support fake server runs the very semantics
 * the Node server runs. Only what test-support and its tests use is listed here; the Node server imports
 * the modules directly.
 */
export {
  handleGet,
  handleUpdate,
  type HandlerResponse,
  type UpdateOptions,
} from './http-handlers.js';
export { PresenceCore } from './presence.js';
export { MemoryStore } from './memory-store.js';
export {
  MessageBus,
  PollHandler,
  encodeChunk,
  parsePollBody,
  presenceChannelAccess,
  type BusRequester,
  type PollResponse,
  type WireMessage,
} from './message-bus/index.js';
export { toErrorResponse } from './errors.js';
export {
  GLOBAL_IDS_PER_MS,
  firstMessageIdBase,
  presenceBusChannel,
} from './bus-messages.js';
export type { PrefixCallback } from './channel-registry.js';
export type { ChannelConfigInput, CurrentUser, PresenceUser } from './types.js';
