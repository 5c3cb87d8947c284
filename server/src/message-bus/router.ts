import express, { type Request, type Response, type Router } from 'express';
import { consoleLogger, type Logger } from '../core/logger.js';
import {
  MessageBus,
  PollHandler,
  integerOption,
  type MessageBusOptions,
  type PollAnswer,
  type PollHandlerStats,
  type PollResponse,
} from '../core/message-bus/index.js';
import type { PresenceStore } from '../core/store.js';
import type { Timers } from '../core/timers.js';
import type { Clock, CurrentUser } from '../core/types.js';
import { corsGrant } from '../http/cors.js';
import { rawQuery } from '../http/params.js';
import { DEFAULT_POLL_BODY_LIMIT_BYTES, readPollRequest } from './read-body.js';

export {
  DEFAULT_LONG_POLL_MS,
  DEFAULT_MAX_HELD_POLLS,
  DEFAULT_MAX_HELD_POLLS_PER_PEER,
  NO_CACHE_HEADERS,
} from '../core/message-bus/index.js';

/** Options of {@link messageBusRouter}. Give `bus`, or `store` to let the router create its own bus. */
export interface MessageBusRouterOptions {
  /** The bus to answer polls from (share it with host code that publishes). */
  bus?: MessageBus;
  /** The store to build a bus on, when no `bus` is given. */
  store?: PresenceStore;
  /**
   * Who is polling (`null` = anonymous): the SAME hook as the presence endpoints, so a poller receives
   * exactly the messages its user may see. Sync or async. Default: everyone is anonymous.
   */
  currentUser?: (
    req: Request,
  ) => CurrentUser | null | undefined | Promise<CurrentUser | null | undefined>;
  /**
   * Forwarded to the bus the router creates; with `bus`, give it to the bus instead (passing both is an
   * error). See {@link MessageBusOptions.canFollow}.
   */
  canFollow?: MessageBusOptions['canFollow'];
  /** Time source of the bus the router creates (ignored with `bus`). */
  clock?: Clock;
  /** Timers of the long-poll timeouts. Default: the global timers, `unref`'d. */
  timers?: Timers;
  /** How long a poll is held when nothing is ready. Default 25 000 ms. */
  longPollMs?: number;
  /** Most polls held at once by this router; above it polls are answered at once. Default 1000. */
  maxHeldPolls?: number;
  /**
   * Most polls held at once for one peer: a signed-in user, or an IP address for anonymous polls (the
   * socket's address, or the forwarded one when `trust proxy` says so). Default 50.
   */
  maxHeldPollsPerPeer?: number;
  /** Most channels in one poll (400 beyond). Default 200. */
  maxChannelsPerPoll?: number;
  /** Largest poll body in bytes (413 beyond). Default 64 KiB. */
  maxBodyBytes?: number;
  /**
   * Origins (e.g. `https://app.example.com`) allowed to poll cross-origin with credentials. Default none:
   * same-origin polls need no CORS at all, and a preflight from any other origin gets no CORS grant.
   */
  allowedOrigins?: readonly string[];
  /** Where server-side failures are reported. Default `console`. */
  logger?: Logger;
}

/** Counters for tests and monitoring: the poll handler's, and the bus subscriptions behind them. */
export interface MessageBusRouterStats extends PollHandlerStats {
  /** Channels the bus is subscribed to in the store (only those held polls wait on). */
  subscribedChannels: number;
  /** Listeners on those subscriptions. */
  listeners: number;
  /** Open bus watches. */
  watches: number;
}

/** The Express router returned by {@link messageBusRouter}, with its bus, stats and shutdown. */
export type MessageBusRouter = Router & {
  /** The bus the router answers from (publish through it). */
  readonly bus: MessageBus;
  /** Current counters. */
  stats(): MessageBusRouterStats;
  /**
   * Graceful shutdown (e.g. on SIGTERM): answers every held poll now (`[]` or the final chunk) and
   * releases its subscriptions; later polls are answered at once. Closes the bus only if the router
   * created it; never closes the store.
   */
  close(): Promise<void>;
};

/**
 * The MessageBus poll endpoint that `message-bus-client` speaks (docs/protocol.md §6), as an Express 5 router:
 *
 * - `POST /message-bus/:clientId/poll` (anything after `/poll` ignored): form or JSON body of
 *   channel → last id plus `__seq`. `?dlp=t` answers at once; otherwise a poll with nothing to send is
 *   held up to `longPollMs` and answered with the first messages that arrive, or `[]`. Unless the client
 *   sent `Dont-Chunk: true`, the answer streams as `text/plain` chunks (`<json>\r\n|\r\n`), starting with
 *   what is ready (or `[]`) and ending with `[]` at the timeout.
 * - A newer poll from the same client id replaces its older held poll (unless the older has a higher
 *   `__seq`).
 * - `OPTIONS` answers CORS preflights (granted only to `allowedOrigins`).
 * - Errors are JSON (`{"errors":[…],"error_type":…}`), answered by the router itself so it works without
 *   the host's error middleware.
 *
 * The router parses bodies itself, so it works whether or not the host app has body parsers. The protocol
 * rules are the core's {@link PollHandler} (shared with the test-support fake server); this is the transport.
 *
 * @example
 * const bus = new MessageBus({ store });
 * const router = messageBusRouter({ bus, currentUser });
 * app.use(router);
 * process.on('SIGTERM', () => void router.close().then(() => server.close()));
 */
export function messageBusRouter(
  options: MessageBusRouterOptions,
): MessageBusRouter {
  if (!options || (!options.bus && !options.store)) {
    throw new TypeError(
      'messageBusRouter({ bus }) or messageBusRouter({ store }): one of them is required',
    );
  }
  if (options.bus && options.canFollow) {
    // Silently ignoring an access hook would leak ids of forbidden channels: refuse instead.
    throw new TypeError(
      'messageBusRouter: with `bus`, pass canFollow to new MessageBus({ store, canFollow }) instead',
    );
  }
  const maxBodyBytes = integerOption(
    options.maxBodyBytes,
    DEFAULT_POLL_BODY_LIMIT_BYTES,
    'maxBodyBytes',
    1,
    'messageBusRouter',
  );
  const logger = options.logger ?? consoleLogger;
  const ownsBus = !options.bus;
  const busOptions: MessageBusOptions = { store: options.store!, logger };
  if (options.clock) busOptions.clock = options.clock;
  if (options.canFollow) busOptions.canFollow = options.canFollow;
  const bus = options.bus ?? new MessageBus(busOptions);
  // Every protocol rule (holds, streams, replacement, caps, status codes) is the core's; this is transport.
  const handler = new PollHandler({
    bus,
    logger,
    name: 'messageBusRouter',
    timers: options.timers,
    longPollMs: options.longPollMs,
    maxHeldPolls: options.maxHeldPolls,
    maxHeldPollsPerPeer: options.maxHeldPollsPerPeer,
    maxChannelsPerPoll: options.maxChannelsPerPoll,
  });
  const currentUser = options.currentUser ?? (() => null);
  // CORS for `allowedOrigins` only. Same-origin polls (the normal case) need none of it; other origins get
  // no grant, so a foreign page can neither read a user's messages nor hold polls with their cookies.
  const applyCors = corsGrant(options.allowedOrigins ?? []);

  const router = express.Router() as MessageBusRouter;

  router.use('/message-bus', (req: Request, res: Response) => {
    applyCors(req, res);
    // The client going away aborts the poll: a held one is released without an answer.
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    void handler
      .handle({
        method: req.method,
        // Relative to the mount point: `/<clientId>/poll[/anything]`.
        path: req.path,
        query: rawQuery(req),
        header: (name) => {
          const value = req.headers[name];
          return Array.isArray(value) ? value.join(', ') : value;
        },
        body: (limits) => readPollRequest(req, maxBodyBytes, limits),
        user: () => currentUser(req),
        // `req.ip`: the socket's, or the forwarded one only when `trust proxy` says a proxy is in front.
        address: req.ip ?? req.socket.remoteAddress,
        signal: gone.signal,
      })
      .then((answer) => send(res, answer, gone.signal));
  });

  Object.defineProperty(router, 'bus', { value: bus, enumerable: true });
  router.stats = (): MessageBusRouterStats => {
    const busStats = bus.stats();
    return {
      ...handler.stats(),
      subscribedChannels: busStats.subscribedChannels,
      listeners: busStats.listeners,
      watches: busStats.watches,
    };
  };
  router.close = async (): Promise<void> => {
    handler.close();
    if (ownsBus) await bus.close();
  };
  return router;
}

/** Writes `answer` to `res`, unless the client is gone. */
function send(res: Response, answer: PollAnswer, gone: AbortSignal): void {
  if (answer.kind === 'held') {
    void answer.response.then((response) => {
      if (response && !gone.aborted) sendResponse(res, response);
    });
    return;
  }
  if (gone.aborted) return;
  if (answer.kind === 'response') {
    sendResponse(res, answer);
    return;
  }
  res.status(answer.status);
  for (const [name, value] of Object.entries(answer.headers))
    res.setHeader(name, value);
  answer.pipe({
    write(chunk) {
      if (res.writableEnded) return;
      res.write(chunk);
      // Behind the `compression` middleware, push the chunk out now instead of when its buffer fills.
      (res as Response & { flush?: () => void }).flush?.();
    },
    end(chunk) {
      if (!res.writableEnded) res.end(chunk);
    },
  });
}

/** A whole answer, without ETag/freshness logic (`res.send` would hash every body for an ETag nobody uses). */
function sendResponse(res: Response, response: PollResponse): void {
  for (const [name, value] of Object.entries(response.headers))
    res.setHeader(name, value);
  // The rest of an oversized body is not worth reading; close the connection instead.
  if (response.status === 413) res.setHeader('Connection', 'close');
  res.status(response.status);
  res.end(
    response.body === undefined
      ? undefined
      : (response.text ?? JSON.stringify(response.body)),
  );
}
