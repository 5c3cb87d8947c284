import express, { type Request, type Response, type Router } from 'express';
import { consoleLogger, type Logger } from '../core/logger.js';
import {
  MessageBus,
  PollHandler,
  encodeChunk,
  integerOption,
  type MessageBusOptions,
  type ChunkSink,
  type PollAnswer,
  type PollHandlerStats,
  type PollResponse,
} from '../core/message-bus/index.js';
import type { PollAnswerObserver } from '../core/metrics-types.js';
import type { PresenceStore } from '../core/store.js';
import { globalTimers, type Timers } from '../core/timers.js';
import type { Clock, CurrentUser } from '../core/types.js';
import { corsGrant } from '../http/cors.js';
import { rawQuery } from '../http/params.js';
import { DEFAULT_POLL_BODY_LIMIT_BYTES, readPollRequest } from './read-body.js';

export {
  DEFAULT_LONG_POLL_MS,
  DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER,
  DEFAULT_MAX_HELD_POLLS,
  DEFAULT_MAX_HELD_POLLS_PER_PEER,
  NO_CACHE_HEADERS,
} from '../core/message-bus/index.js';

/**
 * 256 KiB waiting in Node for one streamed poll (beyond what the kernel's socket buffers took): a client
 * that reads keeps it near 0, since presence chunks are small; one that stopped reading would otherwise
 * make the server keep every chunk published for it. Checked before each chunk, so one large chunk still
 * goes out to a client that had caught up.
 */
export const DEFAULT_MAX_STREAM_BUFFER_BYTES = 256 * 1024;

/**
 * 30 s for a stream's full buffer to drain, longer than a whole 25 s hold: a client that takes longer is
 * not reading (its socket would otherwise stay open with the buffer after the stream ended).
 */
export const DEFAULT_STREAM_DRAIN_TIMEOUT_MS = 30_000;

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
   * Most polls held at once for one peer: a signed-in user, or an address for anonymous polls (the
   * socket's, or the forwarded one when `trust proxy` says so; an IPv6 address counts by its /64).
   * Default 50.
   */
  maxHeldPollsPerPeer?: number;
  /**
   * Most channels followed at once by one peer's held polls, summed over them; a poll that would go past
   * it is answered at once (the client polls instead of waiting). Default 1000.
   */
  maxFollowedChannelsPerPeer?: number;
  /** Most channels in one poll (400 beyond). Default 200. */
  maxChannelsPerPoll?: number;
  /**
   * Most bytes waiting in Node for one streamed poll whose client does not read; past it the stream is
   * cut off (the connection closed, the poll released). Default {@link DEFAULT_MAX_STREAM_BUFFER_BYTES}.
   */
  maxStreamBufferBytes?: number;
  /**
   * How long a stream's full buffer may take to drain before the stream is cut off. Default
   * {@link DEFAULT_STREAM_DRAIN_TIMEOUT_MS}.
   */
  streamDrainTimeoutMs?: number;
  /** Largest poll body in bytes (413 beyond). Default 64 KiB. */
  maxBodyBytes?: number;
  /**
   * Origins (e.g. `https://app.example.com`) allowed to poll cross-origin with credentials. Default none:
   * same-origin polls need no CORS at all, and a preflight from any other origin gets no CORS grant.
   */
  allowedOrigins?: readonly string[];
  /** Where server-side failures are reported. Default `console`. */
  logger?: Logger;
  /** Told how each poll was answered (the metrics' poll answers); absent → nothing is observed. */
  onAnswer?: PollAnswerObserver | undefined;
}

/** Counters for tests and monitoring: the poll handler's, and the bus subscriptions behind them. */
export interface MessageBusRouterStats extends PollHandlerStats {
  /** Channels the bus is subscribed to in the store (only those held polls wait on). */
  subscribedChannels: number;
  /** Listeners on those subscriptions. */
  listeners: number;
  /** Open bus watches. */
  watches: number;
  /**
   * Streams cut off since the router started because their client did not read (buffer past
   * `maxStreamBufferBytes`, or no drain within `streamDrainTimeoutMs`).
   */
  slowStreamsCutOff: number;
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
  const streamLimits: StreamLimits = {
    maxBufferBytes: integerOption(
      options.maxStreamBufferBytes,
      DEFAULT_MAX_STREAM_BUFFER_BYTES,
      'maxStreamBufferBytes',
      1,
      'messageBusRouter',
    ),
    drainTimeoutMs: integerOption(
      options.streamDrainTimeoutMs,
      DEFAULT_STREAM_DRAIN_TIMEOUT_MS,
      'streamDrainTimeoutMs',
      1,
      'messageBusRouter',
    ),
    timers: options.timers ?? globalTimers,
    cutOff: 0,
  };
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
    maxFollowedChannelsPerPeer: options.maxFollowedChannelsPerPeer,
    maxChannelsPerPoll: options.maxChannelsPerPoll,
  });
  const currentUser = options.currentUser ?? (() => null);
  // CORS for `allowedOrigins` only. Same-origin polls (the normal case) need none of it; other origins get
  // no grant, so a foreign page can neither read a user's messages nor hold polls with their cookies.
  const applyCors = corsGrant(options.allowedOrigins ?? []);
  const observe = options.onAnswer;

  const router = express.Router() as MessageBusRouter;

  router.use('/message-bus', (req: Request, res: Response) => {
    applyCors(req, res);
    // The client going away aborts the poll: a held one is released without an answer.
    const gone = new AbortController();
    // Only a close before the answer ended is the client going away. (Aborting after every answer, as
    // this did, built a DOMException per poll: a measurable share of a fan-out to 10,000 polls.)
    res.on('close', () => {
      if (!res.writableEnded) gone.abort();
    });
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
      .then((answer) =>
        send(
          res,
          observe ? observed(answer, observe) : answer,
          gone.signal,
          streamLimits,
        ),
      );
  });

  Object.defineProperty(router, 'bus', { value: bus, enumerable: true });
  router.stats = (): MessageBusRouterStats => {
    const busStats = bus.stats();
    return {
      ...handler.stats(),
      subscribedChannels: busStats.subscribedChannels,
      listeners: busStats.listeners,
      watches: busStats.watches,
      slowStreamsCutOff: streamLimits.cutOff,
    };
  };
  router.close = async (): Promise<void> => {
    handler.close();
    if (ownsBus) await bus.close();
  };
  return router;
}

const EMPTY_CHUNK = encodeChunk([]);

/** `answer`, reporting to `observe` what it carries once it is sent (see {@link PollAnswerObserver}). */
function observed(answer: PollAnswer, observe: PollAnswerObserver): PollAnswer {
  const resultOf = (response: PollResponse) =>
    response.status !== 200
      ? 'error'
      : Array.isArray(response.body) && response.body.length > 0
        ? 'messages'
        : 'empty';
  if (answer.kind === 'response') {
    // A preflight (204) is no poll.
    if (answer.status !== 204) observe('immediate', resultOf(answer));
    return answer;
  }
  if (answer.kind === 'held') {
    return {
      kind: 'held',
      response: answer.response.then((response) => {
        if (response) observe('long_poll', resultOf(response));
        return response;
      }),
    };
  }
  return {
    ...answer,
    pipe: (sink) =>
      answer.pipe({
        write(chunk) {
          if (chunk !== EMPTY_CHUNK) observe('stream', 'messages');
          sink.write(chunk);
        },
        end(chunk) {
          // A stream ends with `[]` normally, with nothing after a failure.
          observe('stream', chunk === undefined ? 'error' : 'empty');
          if (chunk === undefined) sink.end();
          else sink.end(chunk);
        },
      }),
  };
}

/** How a streamed answer bounds what a client that does not read can make the server buffer. */
interface StreamLimits {
  readonly maxBufferBytes: number;
  readonly drainTimeoutMs: number;
  readonly timers: Timers;
  /** Streams cut off so far (the `slowStreamsCutOff` stat). */
  cutOff: number;
}

/** Writes `answer` to `res`, unless the client is gone. */
function send(
  res: Response,
  answer: PollAnswer,
  gone: AbortSignal,
  limits: StreamLimits,
): void {
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
  res.writeHead(answer.status, answer.headers);
  answer.pipe(streamSink(res, limits));
}

/**
 * Where a stream's chunks go: `res`, with backpressure. `res.write` never refuses a chunk, it buffers it;
 * so a client that stops reading is cut off (the socket destroyed, which aborts and releases its poll)
 * once more than `maxBufferBytes` wait for it, or when a full buffer has not drained within
 * `drainTimeoutMs`, also after the stream ended (a socket left holding its buffer for ever otherwise).
 */
function streamSink(res: Response, limits: StreamLimits): ChunkSink {
  let timer: unknown = null;
  const disarm = (): void => {
    if (timer === null) return;
    limits.timers.clearTimeout(timer);
    timer = null;
  };
  const cutOff = (): void => {
    disarm();
    if (res.destroyed) return;
    limits.cutOff += 1;
    res.destroy();
  };
  /** Arms the drain bound while `waiting` (a full buffer, or an end not yet handed to the kernel). */
  const awaitDrain = (waiting: boolean): void => {
    if (timer === null && waiting)
      timer = limits.timers.setTimeout(cutOff, limits.drainTimeoutMs);
  };
  res.on('drain', disarm);
  res.on('finish', disarm);
  res.on('close', disarm);
  const closed = (): boolean => res.writableEnded || res.destroyed;
  return {
    write(chunk) {
      if (closed()) return;
      // `writableLength` counts Node's buffer and the socket's, not what the kernel already took.
      if (res.writableLength > limits.maxBufferBytes) {
        cutOff();
        return;
      }
      if (!res.write(chunk)) awaitDrain(true);
      // Behind the `compression` middleware, push the chunk out now instead of when its buffer fills.
      (res as Response & { flush?: () => void }).flush?.();
    },
    end(chunk) {
      if (closed()) return;
      res.end(chunk);
      // 'finish' comes once the kernel took everything; a client that reads nothing never gets it.
      awaitDrain(!res.writableFinished);
    },
  };
}

/** A whole answer, without ETag/freshness logic (`res.send` would hash every body for an ETag nobody uses). */
function sendResponse(res: Response, response: PollResponse): void {
  const body =
    response.body === undefined
      ? undefined
      : (response.text ?? JSON.stringify(response.body));
  // One writeHead with every header (merged with any set before, e.g. CORS): a `setHeader` per header and
  // Express' `res.status` were a measurable share of a fan-out's CPU. writeHead sends the header block
  // before the body is known, so the length is set here: a whole answer is never chunked.
  const headers: Record<string, string | number> = { ...response.headers };
  if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
  // The rest of an oversized body is not worth reading; close the connection instead.
  if (response.status === 413) headers['Connection'] = 'close';
  res.writeHead(response.status, headers);
  res.end(body);
}
