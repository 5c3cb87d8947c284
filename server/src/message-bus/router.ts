import express, { type Request, type Response, type Router } from 'express';
import { isValidClientId } from '../core/client-id.js';
import { HttpError, toErrorResponse } from '../core/errors.js';
import { consoleLogger, type Logger } from '../core/logger.js';
import {
  DEFAULT_MAX_POLL_CHANNELS,
  MessageBus,
  encodeChunk,
  type BusRequester,
  type BusWatch,
  type MessageBusOptions,
  type PollRequest,
  type WireMessage,
} from '../core/message-bus/index.js';
import type { PresenceStore } from '../core/store.js';
import type { Clock, CurrentUser } from '../core/types.js';
import { corsGrant } from '../http/cors.js';
import { rawQuery } from '../http/params.js';
import { DEFAULT_POLL_BODY_LIMIT_BYTES, readPollRequest } from './read-body.js';

/** 25 s: what `message-bus-client` expects, and under the 30 s idle timeout of common proxies. */
export const DEFAULT_LONG_POLL_MS = 25_000;

/**
 * 1000 held polls per router (normally one per process): each costs a socket, a timer and a listener.
 * Past the cap, polls are answered at once (plain polling), which the client paces itself, instead of
 * exhausting the process.
 */
export const DEFAULT_MAX_HELD_POLLS = 1000;

/**
 * 50 held polls per peer — a signed-in user (by id), else an IP address: one tab holds one poll, so 50
 * tabs of one person or of one office behind one address, while one client cannot take every slot of
 * {@link DEFAULT_MAX_HELD_POLLS} and push everyone else to plain polling. Past it, that peer's polls are
 * answered at once.
 */
export const DEFAULT_MAX_HELD_POLLS_PER_PEER = 50;

/** Headers on every poll response: a poll answer is never reusable by any cache. */
export const NO_CACHE_HEADERS: Readonly<Record<string, string>> = Object.freeze(
  {
    'Cache-Control': 'must-revalidate, private, max-age=0',
    Pragma: 'no-cache',
    Expires: '0',
  },
);

const JSON_TYPE = 'application/json; charset=utf-8';
const STREAM_TYPE = 'text/plain; charset=utf-8';

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

/** Counters for tests and monitoring. */
export interface MessageBusRouterStats {
  /** Polls currently held open (long polls and streams). */
  heldPolls: number;
  /** Of those, chunked streams. */
  streams: number;
  /** Poll requests between arrival and their answer or hold (body read, auth, backlog read). */
  inFlight: number;
  /** Pending long-poll timers (one per held poll). */
  timers: number;
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
 * The MessageBus poll endpoint that `message-bus-client` speaks (SPEC §4), as an Express 5 router:
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
 * The router parses bodies itself, so it works whether or not the host app has body parsers.
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
  const longPollMs = positiveInteger(
    options.longPollMs,
    DEFAULT_LONG_POLL_MS,
    'longPollMs',
  );
  const maxHeldPolls = nonNegativeInteger(
    options.maxHeldPolls,
    DEFAULT_MAX_HELD_POLLS,
    'maxHeldPolls',
  );
  const maxHeldPollsPerPeer = nonNegativeInteger(
    options.maxHeldPollsPerPeer,
    DEFAULT_MAX_HELD_POLLS_PER_PEER,
    'maxHeldPollsPerPeer',
  );
  const maxBodyBytes = positiveInteger(
    options.maxBodyBytes,
    DEFAULT_POLL_BODY_LIMIT_BYTES,
    'maxBodyBytes',
  );
  const limits = {
    maxChannels: positiveInteger(
      options.maxChannelsPerPoll,
      DEFAULT_MAX_POLL_CHANNELS,
      'maxChannelsPerPoll',
    ),
  };
  const logger = options.logger ?? consoleLogger;
  const ownsBus = !options.bus;
  const busOptions: MessageBusOptions = { store: options.store!, logger };
  if (options.clock) busOptions.clock = options.clock;
  if (options.canFollow) busOptions.canFollow = options.canFollow;
  const bus = options.bus ?? new MessageBus(busOptions);
  const currentUser = options.currentUser ?? (() => null);
  // CORS for `allowedOrigins` only. Same-origin polls (the normal case) need none of it; other origins get
  // no grant, so a foreign page can neither read a user's messages nor hold polls with their cookies.
  const applyCors = corsGrant(options.allowedOrigins ?? []);

  /** The one held poll per client id. */
  const held = new Map<string, HeldPoll>();
  let inFlight = 0;
  let timers = 0;
  let closing = false;

  /** Held polls per peer (see {@link peerOf}). */
  const heldPerPeer = new Map<string, number>();

  class HeldPoll {
    readonly clientId: string;
    readonly seq: number;
    readonly chunked: boolean;
    readonly peer: string;
    readonly #res: Response;
    #watch: BusWatch | null = null;
    #cancelTimer: (() => void) | null = null;
    #done = false;

    constructor(
      clientId: string,
      seq: number,
      chunked: boolean,
      peer: string,
      res: Response,
    ) {
      this.clientId = clientId;
      this.seq = seq;
      this.chunked = chunked;
      this.peer = peer;
      this.#res = res;
    }

    /** Starts holding: registers, arms the timeout, writes the first chunk, follows the cursor. */
    start(
      cursor: Record<string, number>,
      requester: BusRequester,
      ready: WireMessage[],
    ): void {
      held.set(this.clientId, this);
      heldPerPeer.set(this.peer, (heldPerPeer.get(this.peer) ?? 0) + 1);
      this.#res.on('close', this.#onClose);
      const timer = setTimeout(() => this.finish('timeout'), longPollMs);
      timers += 1;
      this.#cancelTimer = () => {
        clearTimeout(timer);
        timers -= 1;
      };
      if (this.chunked) {
        this.#res.status(200);
        this.#res.setHeader('Content-Type', STREAM_TYPE);
        // Ask nginx-style proxies not to buffer the stream (the client falls back to long polling if its
        // first chunk takes more than 3 s).
        this.#res.setHeader('X-Accel-Buffering', 'no');
        // Without it Chromium holds back the first 512 bytes of a text/plain response to sniff its type,
        // and a stream of small chunks never reaches the page.
        this.#res.setHeader('X-Content-Type-Options', 'nosniff');
        this.#write(ready);
      }
      bus
        .watch(
          cursor,
          requester,
          (messages) => this.#deliver(messages),
          (error) => this.#fail(error),
        )
        .then(
          (watch) => {
            if (this.#done) watch.close();
            else this.#watch = watch;
          },
          (error: unknown) => this.#fail(error),
        );
    }

    /**
     * Ends the poll. `timeout`/`replaced`/`closing` answer it (`[]`, or a status entry for messages that
     * were filtered out meanwhile); `aborted` only releases (the client is gone).
     */
    finish(
      reason: 'timeout' | 'replaced' | 'closing' | 'aborted' | 'failed',
    ): void {
      if (this.#done) return;
      const status = this.#release();
      if (reason === 'aborted') return;
      if (reason === 'failed' && !this.#res.headersSent) {
        sendError(
          this.#res,
          HttpError.serviceUnavailable(
            'The message bus is temporarily unavailable.',
          ),
        );
        return;
      }
      if (this.chunked) {
        // A stream always ends with an empty chunk; skipped messages are reported in a chunk before it.
        if (status) this.#write([status]);
        if (!this.#res.writableEnded) this.#res.end(encodeChunk([]));
      } else {
        sendJson(this.#res, status ? [status] : []);
      }
    }

    readonly #onClose = (): void => this.finish('aborted');

    /**
     * Releases the timer, the watch (and so its subscriptions) and the registration, all at once. Returns
     * the status entry for messages filtered out while held, if any.
     */
    #release(): WireMessage | null {
      this.#done = true;
      this.#cancelTimer?.();
      this.#cancelTimer = null;
      const status = this.#watch?.skippedStatus() ?? null;
      this.#watch?.close();
      this.#watch = null;
      if (held.get(this.clientId) === this) held.delete(this.clientId);
      const count = (heldPerPeer.get(this.peer) ?? 1) - 1;
      if (count > 0) heldPerPeer.set(this.peer, count);
      else heldPerPeer.delete(this.peer);
      this.#res.off('close', this.#onClose);
      return status;
    }

    #deliver(messages: WireMessage[]): void {
      if (this.#done) return;
      if (this.chunked) {
        this.#write(messages);
        return;
      }
      // A long poll answers with the first messages that arrive (they already carry any status entry).
      this.#release();
      sendJson(this.#res, messages);
    }

    #write(messages: WireMessage[]): void {
      if (this.#res.writableEnded) return;
      this.#res.write(encodeChunk(messages));
      // Behind the `compression` middleware, push the chunk out now instead of when its buffer fills.
      (this.#res as Response & { flush?: () => void }).flush?.();
    }

    #fail(error: unknown): void {
      if (this.#done) return;
      logger.error('message bus: a held poll failed', {
        clientId: this.clientId,
        error,
      });
      this.finish('failed');
    }
  }

  async function poll(
    req: Request,
    res: Response,
    clientId: string,
  ): Promise<void> {
    let aborted = false;
    const onClose = (): void => {
      aborted = true;
    };
    res.on('close', onClose);
    inFlight += 1;
    try {
      const request = await readPollRequest(req, maxBodyBytes, limits);
      const requester: BusRequester = {
        clientId,
        user: toBusUser(await currentUser(req)),
      };
      const peer = peerOf(req, requester);
      const query = rawQuery(req);
      const dlp = query.get('dlp') === 't';
      const chunked =
        !dlp &&
        String(req.headers['dont-chunk'] ?? '').toLowerCase() !== 'true';

      // A stale poll (the held one is newer): answer it empty at once, leave the newer one alone.
      const previous = held.get(clientId);
      if (previous && previous.seq > request.seq) {
        sendJson(res, []);
        return;
      }
      previous?.finish('replaced');

      let result;
      try {
        result = await bus.poll(request, requester);
      } catch (error) {
        logger.error('message bus: answering a poll failed', {
          clientId,
          error,
        });
        throw HttpError.serviceUnavailable(
          'The message bus is temporarily unavailable.',
        );
      }
      if (aborted) return;
      // A capped answer goes out whole at once (never streamed on): the client's next poll continues.
      if (
        result.truncated ||
        !shouldHold(request, dlp, chunked, result.messages, clientId, peer)
      ) {
        sendJson(res, result.messages);
        return;
      }
      held.get(clientId)?.finish('replaced');
      new HeldPoll(clientId, request.seq, chunked, peer, res).start(
        result.cursor,
        requester,
        result.messages,
      );
    } catch (error) {
      if (!aborted) sendError(res, error, logger);
    } finally {
      inFlight -= 1;
      res.off('close', onClose);
    }
  }

  /** Should this poll be held (long poll or stream) rather than answered at once? */
  function shouldHold(
    request: PollRequest,
    dlp: boolean,
    chunked: boolean,
    ready: WireMessage[],
    clientId: string,
    peer: string,
  ): boolean {
    if (dlp || closing || request.positions.length === 0) return false;
    // A long poll with something to say answers now; a stream sends it as its first chunk and stays open.
    if (!chunked && ready.length > 0) return false;
    const current = held.get(clientId);
    // Another poll of this client arrived while this one read the backlog, and it is newer: this one is stale.
    if (current && current.seq > request.seq) return false;
    const others = held.size - (current ? 1 : 0);
    const mine =
      (heldPerPeer.get(peer) ?? 0) - (current?.peer === peer ? 1 : 0);
    return others < maxHeldPolls && mine < maxHeldPollsPerPeer;
  }

  const router = express.Router() as MessageBusRouter;

  router.use('/message-bus', (req: Request, res: Response) => {
    setNoCacheHeaders(res);
    applyCors(req, res);
    // `req.path` is relative to the mount point: `/<clientId>/poll[/anything]`.
    const match = /^\/([^/]+)\/poll(?:\/.*)?$/.exec(req.path);
    if (!match) {
      sendError(
        res,
        HttpError.notFound(
          'Not found. Poll with POST /message-bus/<clientId>/poll.',
        ),
      );
      return;
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Allow', 'POST, OPTIONS');
      res.status(204).end();
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      sendError(
        res,
        new HttpError(405, 'invalid_parameters', 'Poll with POST.'),
      );
      return;
    }
    let clientId: string;
    try {
      clientId = decodeURIComponent(match[1]!);
    } catch {
      clientId = '';
    }
    if (!isValidClientId(clientId)) {
      sendError(
        res,
        HttpError.invalidParameters(
          'The client id must be a non-blank string of at most 64 characters.',
        ),
      );
      return;
    }
    void poll(req, res, clientId);
  });

  Object.defineProperty(router, 'bus', { value: bus, enumerable: true });
  router.stats = (): MessageBusRouterStats => {
    const busStats = bus.stats();
    let streams = 0;
    for (const poll of held.values()) if (poll.chunked) streams += 1;
    return {
      heldPolls: held.size,
      streams,
      inFlight,
      timers,
      subscribedChannels: busStats.subscribedChannels,
      listeners: busStats.listeners,
      watches: busStats.watches,
    };
  };
  router.close = async (): Promise<void> => {
    closing = true;
    for (const poll of [...held.values()]) poll.finish('closing');
    if (ownsBus) await bus.close();
  };
  return router;
}

function setNoCacheHeaders(res: Response): void {
  for (const [name, value] of Object.entries(NO_CACHE_HEADERS))
    res.setHeader(name, value);
}

/** JSON answer without ETag/freshness logic (`res.send` would hash every body for an ETag nobody uses). */
function sendJson(res: Response, messages: readonly WireMessage[]): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  res.status(200);
  res.setHeader('Content-Type', JSON_TYPE);
  res.end(JSON.stringify(messages));
}

function sendError(res: Response, error: unknown, logger?: Logger): void {
  const { status, body, headers } = toErrorResponse(error);
  // HttpErrors are expected outcomes (logged where they arise, if at all); anything else is a bug to see.
  if (status >= 500 && logger && !(error instanceof HttpError))
    logger.error('message bus: poll failed', { error });
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  for (const [name, value] of Object.entries(headers ?? {}))
    res.setHeader(name, value);
  // The rest of an oversized body is not worth reading; close the connection instead.
  if (status === 413) res.setHeader('Connection', 'close');
  res.status(status);
  res.setHeader('Content-Type', JSON_TYPE);
  res.end(JSON.stringify(body));
}

/** Only what audience filtering and `canFollow` need; a malformed hook result is a loud host bug. */
/**
 * Who a held poll counts against: the signed-in user (every tab and device of theirs), else the client's
 * address (`req.ip`: the socket's, or the forwarded one only when `trust proxy` says a proxy is in front).
 */
function peerOf(req: Request, requester: BusRequester): string {
  if (requester.user) return `user:${requester.user.id}`;
  return `ip:${req.ip ?? req.socket.remoteAddress ?? 'unknown'}`;
}

function toBusUser(user: CurrentUser | null | undefined): BusRequester['user'] {
  if (user === null || user === undefined) return null;
  if (typeof user !== 'object' || !Number.isSafeInteger(user.id)) {
    throw new Error(
      'currentUser(req) must return null or a user with an integer `id`',
    );
  }
  const groupIds = Array.isArray(user.groupIds)
    ? user.groupIds.filter((id) => Number.isSafeInteger(id))
    : [];
  return { ...user, groupIds };
}

function positiveInteger(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(
      `messageBusRouter: ${name} must be a positive integer (got ${String(value)})`,
    );
  }
  return value;
}

function nonNegativeInteger(
  value: number | undefined,
  fallback: number,
  name: string,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(
      `messageBusRouter: ${name} must be a non-negative integer (got ${String(value)})`,
    );
  }
  return value;
}
