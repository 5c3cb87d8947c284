/**
 * `ember-presence/server`: the reference presence server as a library. This file is its export list and
 * nothing else: what a host app needs to mount the server, configure it, identify users, pick a store and
 * type what it gets back. The building blocks behind it (core, routers, middleware, demo login) are
 * internal.
 *
 * @example
 * import express from 'express';
 * import { createPresenceServer } from 'ember-presence/server';
 *
 * const presence = createPresenceServer({
 *   redisUrl: process.env.REDIS_URL,            // omit for the in-process MemoryStore
 *   currentUser: (req) => req.session?.user ?? null,
 * });
 * presence.registerPrefix('site', (name) => (name === '/site/online' ? { public: true } : null));
 * app.use(presence.router);                    // /presence/get, /presence/update, /message-bus/…, /healthz
 */

// Mounting the server.
export {
  createPresenceServer,
  type PresenceServer,
  type PresenceServerOptions,
} from './presence-server.js';
export {
  createApp,
  type CreateAppOptions,
  type PresenceApp,
} from './http/app.js';
export { DEFAULT_SWEEP_INTERVAL_MS } from './core/presence.js';
export type { RateLimitOptions } from './core/http-handlers.js';
export type { DemoLoginOptions } from './http/auth/demo-login.js';

// Channels, users, states and messages.
export type {
  Audience,
  BusMessage,
  ChannelConfig,
  ChannelConfigInput,
  ChannelState,
  Clock,
  CountOnlyChannelState,
  CurrentUser,
  FullChannelState,
  PresenceUser,
} from './core/types.js';
export type { PrefixCallback } from './core/channel-registry.js';
export type { PresenceResult, SweepResult } from './core/store.js';
export { ChannelFull, HttpError, InvalidAccess } from './core/errors.js';

// Who is the user?
export { firstUser, type CurrentUserHook } from './http/auth/current-user.js';
export { jwtCurrentUser, type JwtAuthOptions } from './http/auth/jwt.js';

// Stores (the `store` option).
export type { PresenceStore, PublishRules } from './core/store.js';
export { MemoryStore, type MemoryStoreOptions } from './core/memory-store.js';
export { RedisStore, type RedisStoreOptions } from './store/redis-store.js';

// Join/leave events (`presence.on`, the `webhooks` option).
export type {
  EventLog,
  PendingEvents,
  PresenceEvent,
  PresenceEventName,
  StoreCounts,
} from './core/store.js';
export type { PresenceEventHandler } from './events/dispatcher.js';
export {
  signWebhookBody,
  verifyWebhookSignature,
  WEBHOOK_SIGNATURE_HEADER,
  type WebhookBody,
  type WebhookEvent,
  type WebhookOptions,
} from './events/webhooks.js';

// Metrics (the `metrics` option; `presence.metrics`).
export type { PresenceMetrics } from './http/metrics.js';
export { NO_EVENT_METRICS, type EventMetrics } from './core/metrics-types.js';

// Logging (the `logger` option).
export {
  createJsonLogger,
  silentLogger,
  type Logger,
  type LogFields,
  type LogLevel,
} from './http/logger.js';
