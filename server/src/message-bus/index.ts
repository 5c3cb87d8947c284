/**
 * The MessageBus transport for Node: the Express poll router over the environment-agnostic bus core.
 */
export {
  DEFAULT_LONG_POLL_MS,
  DEFAULT_MAX_HELD_POLLS,
  NO_CACHE_HEADERS,
  messageBusRouter,
  type MessageBusRouter,
  type MessageBusRouterOptions,
  type MessageBusRouterStats,
} from './router.js';
export { DEFAULT_POLL_BODY_LIMIT_BYTES } from './read-body.js';
export * from '../core/message-bus/index.js';
