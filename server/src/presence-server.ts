import express, { type Request, type Response, type Router } from 'express';
import type { PrefixCallback } from './core/channel-registry.js';
import { HttpError } from './core/errors.js';
import { MemoryStore } from './core/memory-store.js';
import { presenceChannelAccess } from './core/message-bus/index.js';
import { PresenceCore } from './core/presence.js';
import type {
  PresenceResult,
  PresenceStore,
  SweepResult,
} from './core/store.js';
import type {
  Audience,
  BusMessage,
  ChannelState,
  Clock,
  CurrentUser,
} from './core/types.js';
import {
  anonymousOnly,
  firstUser,
  type CurrentUserHook,
} from './http/auth/current-user.js';
import {
  createDemoLogin,
  type DemoLoginOptions,
} from './http/auth/demo-login.js';
import { createBusEndpoint } from './http/bus-endpoint.js';
import { errorMiddleware } from './http/error-middleware.js';
import { createJsonLogger, describeError, type Logger } from './http/logger.js';
import { createMetrics, type PresenceMetrics } from './http/metrics.js';
import { withTimeout } from './http/with-timeout.js';
import {
  EventDispatcher,
  type PresenceEventHandler,
} from './events/dispatcher.js';
import { createWebhookSink, type WebhookOptions } from './events/webhooks.js';
import type { PresenceEventName } from './core/store.js';
import {
  presenceRouter,
  resolveUser,
  type RateLimitOptions,
} from './http/presence-router.js';
import { createRedisStore } from './http/redis.js';
import type { MessageBusRouterStats } from './message-bus/router.js';

/** Options of {@link createPresenceServer}. Every field is optional. */
export interface PresenceServerOptions {
  /** A store you created (and will close yourself). Takes precedence over `redisUrl`. */
  store?: PresenceStore;
  /**
   * Redis URL (`redis://…`, `rediss://…`) for a `RedisStore` shared by many processes. Absent (and no
   * `store`) → an in-process `MemoryStore`: one process only.
   */
  redisUrl?: string;
  /** Prefix of every Redis key of the `redisUrl` store (default `ep:`); lets several apps share one Redis. */
  redisKeyPrefix?: string;
  /** Who is making a request; used by the presence endpoints AND the message bus. Default: anonymous. */
  currentUser?: CurrentUserHook;
  /** Mount the demo login (`/presence/demo-login`, …). Off by default: its routes answer 404. */
  demoLogin?: boolean | DemoLoginOptions;
  /** Clock in ms since the epoch. Default `Date.now`. */
  clock?: Clock;
  /** Per-user limit on `POST /presence/update`. Default `{ limit: 20, windowMs: 10_000 }`; `false` disables it. */
  rateLimit?: RateLimitOptions | false;
  /**
   * Most channels one user may be present in at once, across tabs and processes; presents beyond it
   * answer `false`. Default 100; `false` disables it.
   */
  maxChannelsPerUser?: number | false;
  /** How long a message-bus long-poll is held. Default 25 s. */
  longPollMs?: number;
  /** Long polls held at once by this process; beyond it polls are answered at once. Default 1000. */
  maxHeldPolls?: number;
  /**
   * Long polls held at once per signed-in user, or per address for anonymous polls (an IPv6 address by
   * its /64). Default 50.
   */
  maxHeldPollsPerPeer?: number;
  /**
   * Channels followed at once by one peer's held polls, summed over them; a poll that would go past it is
   * answered at once. Default 1000.
   */
  maxFollowedChannelsPerPeer?: number;
  /** Origins besides the server's own that may POST updates and poll (CSRF allow-list, and CORS). */
  allowedOrigins?: readonly string[];
  /** Structured logger. Default: JSON lines on stdout at `info`. */
  logger?: Logger;
  /** How long channel configs (and "not found") are cached in the store. Default 2 min. */
  configTtlMs?: number;
  /**
   * Interval of the auto-leave sweep. Default `DEFAULT_SWEEP_INTERVAL_MS` (5 s); `0` disables the timer
   * (call `sweep()` yourself).
   */
  sweepIntervalMs?: number;
  /** Largest accepted update body in bytes. Default 100 KiB. */
  bodyLimitBytes?: number;
  /**
   * Prometheus metrics on `GET /metrics` (README "Metrics"). Default `false`: no route (404), no store
   * wrapper, no cost. The figures are operational: do not expose the route to the public.
   */
  metrics?: boolean;
  /**
   * POST every join/leave event to these receivers, signed with `secret` (README "Webhooks"). Every
   * process sharing the store should get the same webhooks: whichever holds a shard's lease delivers it.
   */
  webhooks?: WebhookOptions;
  /** A hook (see `on`) running longer than this is left behind (logged, counted). Default 5 s. */
  hookTimeoutMs?: number;
  /**
   * How long a process holds the delivery of a share of the events without renewing it: after a crash,
   * another process delivers what the dead one had not (at most this much later). Default 15 s.
   */
  eventLeaseMs?: number;
}

/**
 * What {@link createPresenceServer} returns: the router to mount and the server-side API as methods. Its
 * parts (core, store, bus) stay inside; everything a host does goes through these members.
 */
export interface PresenceServer {
  /**
   * Express router with `GET /presence/get`, `POST /presence/update`, `POST /message-bus/:clientId/poll`,
   * `GET /healthz` (and the demo login routes when enabled), followed by the JSON error middleware.
   */
  readonly router: Router;
  /**
   * Registers the config callback for `/<prefix>/…` channels (docs/protocol.md §1).
   *
   * @example presence.registerPrefix('team', (name) => ({ allowedUserIds: teamMembers(name) }));
   */
  registerPrefix(prefix: string, callback: PrefixCallback): void;
  /** Drops the cached config of a channel in every process (e.g. after revoking access). */
  invalidateConfig(name: string): Promise<void>;
  /**
   * Marks `user` present in `channel` from `clientId` on their behalf (e.g. a server-side event). Rejects
   * with `InvalidAccess` when the channel does not exist or the user may not enter it, and with
   * `ChannelFull` (an `InvalidAccess`) when a user not yet present would exceed its `maxUsers`.
   */
  present(
    user: CurrentUser,
    channel: string,
    clientId: string,
  ): Promise<PresenceResult>;
  /** Removes `clientId` of `user` (or a user id) from `channel`; a silent no-op when unknown. */
  leave(
    user: Pick<CurrentUser, 'id'> | number,
    channel: string,
    clientId: string,
  ): Promise<PresenceResult>;
  /**
   * The state `GET /presence/get` would return for `user` (`null` = anonymous), to embed in a page payload
   * (docs/protocol.md §3); `null` when the channel does not exist or `user` may not view it.
   *
   * @example res.json({ topic, presence: await presence.stateFor(`/topic/${id}/reply`, user) });
   */
  stateFor(
    channel: string,
    user?: CurrentUser | null,
  ): Promise<ChannelState | null>;
  /**
   * Publishes `data` (a JSON value) on a message-bus channel for `audience` (default everyone). The channel
   * name follows the bus rule (`/…`, at most 256 characters, no control characters); `/presence/…` is
   * reserved.
   *
   * @example await presence.publish('/notifications/7', { unread: 3 }, { userIds: [7] });
   */
  publish(
    channel: string,
    data: unknown,
    audience?: Audience,
  ): Promise<BusMessage>;
  /** Runs one auto-leave sweep now. */
  sweep(): Promise<SweepResult>;
  /** Counters of the message-bus endpoint (held polls, streams, subscriptions), for monitoring. */
  stats(): MessageBusRouterStats;
  /**
   * Calls `handler({ id, name, channel, userId, at })` for every `name` event in the deployment:
   * `member_added` (a user's first client entered a channel), `member_removed` (their last client left or
   * expired: sweeper leaves included), `channel_occupied`, `channel_vacated`. Once per event across all
   * processes sharing the store (whichever holds the event's shard calls it; register the same hooks in
   * every process), in channel order; after a crash, at least once (same `id`). A handler that throws,
   * rejects or runs past `hookTimeoutMs` is logged and never breaks presence. Returns a function that
   * removes the handler.
   *
   * @example presence.on('member_added', ({ channel, userId, at }) => markSeen(userId, at));
   */
  on(name: PresenceEventName, handler: PresenceEventHandler): () => void;
  /**
   * The Prometheus metrics behind `GET /metrics` with `metrics: true` (also the `EventMetrics` of hooks
   * and webhooks, and `counter()` for more figures); `null` without.
   */
  readonly metrics: PresenceMetrics | null;
  /** Resolves when the store answers within `timeoutMs` (default 2 s); rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  /**
   * The first half of a graceful shutdown: stops the sweeper and answers every held long-poll (later
   * polls are answered at once), while the store stays open so that requests still in flight finish
   * normally. Call it after your HTTP server stopped accepting, wait for the requests in flight, then
   * `close()`. Idempotent.
   */
  drain(): Promise<void>;
  /**
   * {@link drain}, then closes the store when this server created it (a `store` you passed is yours to
   * close). Idempotent.
   */
  close(): Promise<void>;
}

const HEALTH_TIMEOUT_MS = 2000; // a health probe must answer well within a load balancer's own timeout

/** The logger used when none is passed: JSON lines on stdout at `info`. */
export function defaultLogger(): Logger {
  return createJsonLogger({ base: { service: 'ember-presence' } });
}

/**
 * Builds a presence server: the core over a store, its HTTP endpoints and message bus as one Express
 * router, and the server-side API. It does not listen; mount `router` in your app (or use `createApp`).
 *
 * @example
 * const presence = createPresenceServer({ redisUrl: process.env.REDIS_URL, currentUser });
 * presence.registerPrefix('site', (name) => (name === '/site/online' ? { public: true } : null));
 * app.use(presence.router);
 */
export function createPresenceServer(
  options: PresenceServerOptions = {},
): PresenceServer {
  const logger = options.logger ?? defaultLogger();
  // A store created here is closed by close(); one passed in stays its owner's.
  let owned: { store: PresenceStore; close(): Promise<void> } | null = null;
  if (!options.store) {
    if (options.redisUrl) {
      owned = createRedisStore(options.redisUrl, logger, {
        ...(options.redisKeyPrefix !== undefined
          ? { storeOptions: { keyPrefix: options.redisKeyPrefix } }
          : {}),
      });
    } else {
      const memory = new MemoryStore();
      owned = { store: memory, close: () => memory.close() };
    }
  }
  const store = options.store ?? owned!.store;
  try {
    return assemble(options, logger, store, owned);
  } catch (err) {
    // A bad option must not leave a Redis connection open (the process would never exit).
    void owned?.close().catch(() => undefined);
    throw err;
  }
}

/** The rest of {@link createPresenceServer}, once the store exists. */
function assemble(
  options: PresenceServerOptions,
  logger: Logger,
  rawStore: PresenceStore,
  owned: { close(): Promise<void> } | null,
): PresenceServer {
  // Without metrics the store is used as is: no wrapper, nothing measured.
  const metrics = options.metrics ? createMetrics({ logger }) : null;
  const store = metrics ? metrics.instrumentStore(rawStore) : rawStore;
  const clock = options.clock ?? Date.now;
  const core = new PresenceCore({
    store,
    clock,
    logger,
    ...(options.configTtlMs !== undefined
      ? { configTtlMs: options.configTtlMs }
      : {}),
    ...(options.sweepIntervalMs !== undefined
      ? { sweepIntervalMs: options.sweepIntervalMs }
      : {}),
  });

  // Built before anything starts (a bad webhook option throws here). Every process runs it: a process without hooks or webhooks still has to record events while another
  // one consumes them (it checks every 5 s, one cheap read).
  const events = new EventDispatcher({
    log: rawStore.events,
    clock,
    logger,
    sink: options.webhooks
      ? createWebhookSink(options.webhooks, {
          clock,
          logger,
          ...(metrics ? { metrics } : {}),
        })
      : null,
    ...(metrics ? { metrics } : {}),
    ...(options.hookTimeoutMs !== undefined
      ? { hookTimeoutMs: options.hookTimeoutMs }
      : {}),
    ...(options.eventLeaseMs !== undefined
      ? { leaseMs: options.eventLeaseMs }
      : {}),
  });

  const demo = options.demoLogin
    ? createDemoLogin({
        ...(options.demoLogin === true ? {} : options.demoLogin),
        ...(options.allowedOrigins
          ? { allowedOrigins: options.allowedOrigins }
          : {}),
      })
    : null;
  const baseUser = options.currentUser ?? anonymousOnly;
  const currentUser = demo ? firstUser(baseUser, demo.currentUser) : baseUser;

  const bus = createBusEndpoint({
    store,
    clock,
    logger,
    currentUser: async (req) => resolveUser(currentUser, req),
    // A presence bus channel may only be followed by those who may view the presence channel, so its ids
    // and activity reveal nothing to others (a forbidden channel looks like one that never had a message).
    canFollow: presenceChannelAccess(core),
    longPollMs: options.longPollMs,
    maxHeldPolls: options.maxHeldPolls,
    maxHeldPollsPerPeer: options.maxHeldPollsPerPeer,
    maxFollowedChannelsPerPeer: options.maxFollowedChannelsPerPeer,
    allowedOrigins: options.allowedOrigins,
    ...(metrics
      ? { onPollAnswer: (mode, result) => metrics.pollAnswered(mode, result) }
      : {}),
  });
  metrics?.collectFrom({
    counts: () => rawStore.counts(),
    stats: () => bus.router.stats(),
  });

  const ping = (timeoutMs = HEALTH_TIMEOUT_MS): Promise<void> =>
    withTimeout(store.ping(), timeoutMs);

  const router = express.Router();
  if (metrics) router.use(metrics.requestCounter());
  router.use(
    presenceRouter({
      core,
      currentUser,
      ...(options.allowedOrigins
        ? { allowedOrigins: options.allowedOrigins }
        : {}),
      ...(options.rateLimit !== undefined
        ? { rateLimit: options.rateLimit }
        : {}),
      ...(options.maxChannelsPerUser !== undefined
        ? { maxChannelsPerUser: options.maxChannelsPerUser }
        : {}),
      ...(options.bodyLimitBytes !== undefined
        ? { bodyLimitBytes: options.bodyLimitBytes }
        : {}),
      ...(metrics
        ? { onUpdateAnswer: (answer) => metrics.updateAnswered(answer) }
        : {}),
    }),
  );
  if (demo) router.use(demo.router);
  router.use(bus.router);
  router.get('/healthz', async (_req: Request, res: Response) => {
    try {
      await ping();
    } catch (err) {
      logger.warn('health check failed', { error: describeError(err) });
      throw HttpError.serviceUnavailable();
    }
    res.set('Cache-Control', 'no-store').json({ ok: true });
  });
  if (metrics) {
    router
      .route('/metrics')
      .get(metrics.handler())
      .all((_req: Request, res: Response) => {
        res.set('Allow', 'GET, HEAD');
        throw new HttpError(405, 'invalid_parameters', 'Scrape with GET.');
      });
  }
  router.use(errorMiddleware(logger));

  core.startSweeper(); // a no-op when sweepIntervalMs is 0
  events.start();

  let draining: Promise<void> | null = null;
  const drain = (): Promise<void> => {
    draining ??= (async () => {
      await core.stop();
      await events.stop();
      await bus.close();
    })();
    return draining;
  };
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await drain();
      if (owned) await owned.close();
    })();
    return closing;
  };

  return {
    router,
    registerPrefix: (prefix, callback) => core.registerPrefix(prefix, callback),
    invalidateConfig: (name) => core.invalidateConfig(name),
    present: (user, channel, clientId) => core.present(user, channel, clientId),
    leave: (user, channel, clientId) => core.leave(user, channel, clientId),
    stateFor: (channel, user = null) => core.state(channel, user),
    publish: (channel, data, audience) => core.publish(channel, data, audience),
    sweep: () => core.sweep(),
    stats: () => bus.router.stats(),
    on: (name, handler) => events.on(name, handler),
    metrics,
    ping,
    drain,
    close,
  };
}
