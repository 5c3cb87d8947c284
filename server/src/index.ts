/**
 * `ember-presence/server`: the reference presence server as a library.
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
import express, {
  type Application,
  type Request,
  type Response,
  type Router,
} from 'express';
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
import { errorMiddleware, notFoundHandler } from './http/error-middleware.js';
import { createJsonLogger, describeError, type Logger } from './http/logger.js';
import {
  presenceRouter,
  resolveUser,
  type RateLimitOptions,
} from './http/presence-router.js';
import { createBusEndpoint, type BusEndpoint } from './http/bus-endpoint.js';
import type { MessageBusRouter } from './message-bus/router.js';
import { createRedisStore } from './http/redis.js';

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
export type {
  PresenceResult,
  PresenceStore,
  PublishRules,
  SweepResult,
} from './core/store.js';
export type { PrefixCallback } from './core/channel-registry.js';
export {
  HttpError,
  InvalidAccess,
  toErrorBody,
  toErrorResponse,
  type ErrorBody,
} from './core/errors.js';
export { MemoryStore, type MemoryStoreOptions } from './core/memory-store.js';
export { RedisStore, type RedisStoreOptions } from './store/redis-store.js';
export { FAIL_FAST_REDIS_OPTIONS } from './http/redis.js';
export { PresenceCore } from './core/presence.js';
export {
  anonymousOnly,
  firstUser,
  type CurrentUserHook,
} from './http/auth/current-user.js';
export {
  jwtCurrentUser,
  tokenRejection,
  type JwtAuthOptions,
} from './http/auth/jwt.js';
export {
  createDemoLogin,
  type DemoLogin,
  type DemoLoginOptions,
} from './http/auth/demo-login.js';
export { DEMO_USERS } from './http/auth/demo-users.js';
export { csrfProtection, type CsrfOptions } from './http/csrf.js';
export { answerClientErrorsWithJson } from './http/client-errors.js';
export {
  errorMiddleware,
  isStoreUnavailable,
} from './http/error-middleware.js';
export {
  createJsonLogger,
  silentLogger,
  type Logger,
  type LogFields,
  type LogLevel,
} from './http/logger.js';
export {
  presenceRouter,
  type PresenceRouterOptions,
  type RateLimitOptions,
} from './http/presence-router.js';

/** Options of {@link createPresenceServer}. Every field is optional. */
export interface PresenceServerOptions {
  /** A store you created (and will close yourself). Takes precedence over `redisUrl`. */
  store?: PresenceStore;
  /**
   * Redis URL (`redis://…`, `rediss://…`) for a {@link RedisStore} shared by many processes. Absent (and no
   * `store`) → an in-process {@link MemoryStore}: one process only.
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
  /** Per-user limit on `POST /presence/update`. Default 20 per 10 s; `false` disables it. */
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
  /** Long polls held at once per signed-in user, or per IP for anonymous polls. Default 50. */
  maxHeldPollsPerPeer?: number;
  /** Origins besides the server's own that may POST (CSRF allow-list, see `csrfProtection`). */
  allowedOrigins?: readonly string[];
  /** Structured logger. Default: JSON lines on stdout at `info`. */
  logger?: Logger;
  /** How long channel configs (and "not found") are cached in the store. Default 2 min. */
  configTtlMs?: number;
  /** Interval of the auto-leave sweep; `0` disables the timer (call `sweep()` yourself). Default 5 s. */
  sweepIntervalMs?: number;
  /** Largest accepted update body in bytes. Default 100 KiB. */
  bodyLimitBytes?: number;
}

/** What {@link createPresenceServer} returns. */
export interface PresenceServer {
  /**
   * Express router with `GET /presence/get`, `POST /presence/update`, `POST /message-bus/:clientId/poll`,
   * `GET /healthz` (and the demo login routes when enabled), followed by the JSON error middleware.
   */
  readonly router: Router;
  /** The presence core (semantics over the store). */
  readonly core: PresenceCore;
  /** The message-bus poll router (its `bus`, and `stats()` of held polls for monitoring). */
  readonly messageBus: MessageBusRouter;
  /** The store everything lives in. */
  readonly store: PresenceStore;
  /** The logger in use. */
  readonly logger: Logger;
  /** The identity hook in use (the configured one, plus the demo login when enabled). */
  readonly currentUser: CurrentUserHook;
  /**
   * Registers the config callback for `/<prefix>/…` channels (SPEC §1.1).
   *
   * @example presence.registerPrefix('team', (name) => ({ allowedUserIds: teamMembers(name) }));
   */
  registerPrefix(prefix: string, callback: PrefixCallback): void;
  /** Drops the cached config of a channel in every process (e.g. after revoking access). */
  invalidateConfig(name: string): Promise<void>;
  /**
   * Marks `user` present in `channel` from `clientId` on their behalf (e.g. a server-side event). Rejects
   * with `InvalidAccess` when the channel does not exist or the user may not enter it.
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
   * (SPEC §3.3); `null` when the channel does not exist or `user` may not view it.
   *
   * @example res.json({ topic, presence: await presence.stateFor(`/topic/${id}/reply`, user) });
   */
  stateFor(
    channel: string,
    user?: CurrentUser | null,
  ): Promise<ChannelState | null>;
  /** Same as {@link stateFor}. */
  state(
    channel: string,
    user?: CurrentUser | null,
  ): Promise<ChannelState | null>;
  /**
   * Publishes `data` on a message-bus channel for `audience` (default everyone). `/presence/…` is reserved.
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

/**
 * Builds a presence server: the core over a store, its HTTP endpoints and message bus as one Express
 * router, and the server-side API. It does not listen; mount `router` in your app (or use
 * {@link createApp}).
 *
 * @example see the module documentation.
 */
export function createPresenceServer(
  options: PresenceServerOptions = {},
): PresenceServer {
  const logger =
    options.logger ?? createJsonLogger({ base: { service: 'ember-presence' } });
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
  store: PresenceStore,
  owned: { close(): Promise<void> } | null,
): PresenceServer {
  const clock = options.clock ?? Date.now;
  const sweepIntervalMs = options.sweepIntervalMs ?? 5000;
  const core = new PresenceCore({
    store,
    clock,
    logger,
    ...(options.configTtlMs !== undefined
      ? { configTtlMs: options.configTtlMs }
      : {}),
    ...(sweepIntervalMs > 0 ? { sweepIntervalMs } : {}),
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

  const bus: BusEndpoint = createBusEndpoint({
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
    allowedOrigins: options.allowedOrigins,
  });

  const ping = (timeoutMs = HEALTH_TIMEOUT_MS): Promise<void> =>
    withTimeout(store.ping(), timeoutMs);

  const router = express.Router();
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
  router.use(errorMiddleware(logger));

  if (sweepIntervalMs > 0) core.startSweeper();

  let draining: Promise<void> | null = null;
  const drain = (): Promise<void> => {
    draining ??= (async () => {
      await core.stop();
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
    drain,
    router,
    core,
    messageBus: bus.router,
    store,
    logger,
    currentUser,
    registerPrefix: (prefix, callback) => core.registerPrefix(prefix, callback),
    invalidateConfig: (name) => core.invalidateConfig(name),
    present: (user, channel, clientId) => core.present(user, channel, clientId),
    leave: (user, channel, clientId) => core.leave(user, channel, clientId),
    stateFor: (channel, user = null) => core.stateFor(channel, user),
    state: (channel, user = null) => core.state(channel, user),
    publish: (channel, data, audience) => bus.publish(channel, data, audience),
    sweep: () => core.sweep(),
    ping,
    close,
  };
}

/** Options of {@link createApp}: {@link PresenceServerOptions} plus standalone-server settings. */
export interface CreateAppOptions extends PresenceServerOptions {
  /** Serve a built Ember app from this directory, with an SPA fallback to its index.html. */
  staticDir?: string;
  /**
   * Express `trust proxy`: which peers may set `X-Forwarded-Host`/`-Proto`/`-For`, which the CSRF
   * same-origin check (and the client IP) then honour. Default `false`: no forwarded header is believed,
   * whoever the peer is, until the operator says a proxy is in front (`'loopback'` for one on the same
   * machine, a subnet, a hop count; CLI `--trust-proxy`). A dev proxy that keeps the `Host` header (vite's
   * default) needs none.
   */
  trustProxy?: boolean | string | number;
}

/** An Express app with its presence server attached. */
export type PresenceApp = Application & { presence: PresenceServer };

/**
 * The standalone server's Express app: the presence router, optional static files, JSON 404s and JSON
 * errors. It never listens (`main.ts` does; tests drive it with supertest).
 *
 * @example
 * const app = createApp({ currentUser });
 * app.presence.registerPrefix('site', () => ({ public: true }));
 * app.listen(3000);
 */
export function createApp(options: CreateAppOptions = {}): PresenceApp {
  const presence = createPresenceServer(options);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy ?? false);
  app.use(accessLog(presence.logger));
  app.use(presence.router);
  if (options.staticDir !== undefined) {
    const root = options.staticDir;
    app.use(express.static(root, { index: 'index.html' }));
    app.get('/{*path}', (req: Request, res: Response, next) => {
      // Client-side routes get the app shell; API paths and non-HTML requests keep their JSON 404.
      if (isApiPath(req.path) || !req.accepts('html')) {
        next();
        return;
      }
      res.sendFile('index.html', { root }, (err?: Error) => {
        if (err) next(err);
      });
    });
  }
  app.use(notFoundHandler());
  app.use(errorMiddleware(presence.logger));
  return Object.assign(app, { presence });
}

function isApiPath(path: string): boolean {
  return (
    path.startsWith('/presence/') ||
    path.startsWith('/message-bus/') ||
    path === '/healthz'
  );
}

/** One `debug` line per finished request: method, path, status, duration. */
function accessLog(logger: Logger): express.RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      logger.debug('request', {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        ms: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
      });
    });
    next();
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Command timed out after ${ms} ms`)),
      ms,
    );
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
