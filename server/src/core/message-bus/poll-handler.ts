import { isValidClientId } from '../client-id.js';
import { HttpError, toErrorResponse } from '../errors.js';
import { consoleLogger, type Logger } from '../logger.js';
import { globalTimers, type Timers } from '../timers.js';
import type { CurrentUser } from '../types.js';
import type { BusRequester } from './audience.js';
import type { BusWatch, MessageBus } from './message-bus.js';
import { peerKey } from './peer-key.js';
import {
  DEFAULT_MAX_POLL_CHANNELS,
  type PollLimits,
  type PollRequest,
} from './poll-request.js';
import { answerJson, encodeChunk, type WireMessage } from './wire.js';

/**
 * `POST /message-bus/<clientId>/poll` (docs/protocol.md), once, for every transport: the Express router and
 * the in-browser fake server hand a {@link PollHttpRequest} to a {@link PollHandler} and write out the
 * {@link PollAnswer} it returns. Every protocol rule lives here: 404/405/400 routing, `?dlp=t`,
 * `Dont-Chunk`, the 25 s hold, replacement by `__seq`, capped answers sent at once, the held-poll caps,
 * chunk framing, status codes and headers. Timers are injectable, so a test (or a fake clock) decides when
 * a held poll times out.
 */

/** 25 s: what `message-bus-client` expects, and under the 30 s idle timeout of common proxies. */
export const DEFAULT_LONG_POLL_MS = 25_000;

/**
 * 1000 held polls per handler (normally one per process): each costs a socket, a timer and a listener.
 * Past the cap, polls are answered at once (plain polling), which the client paces itself, instead of
 * exhausting the process.
 */
export const DEFAULT_MAX_HELD_POLLS = 1000;

/**
 * 50 held polls per peer — a signed-in user (by id), else an address (an IPv6 /64, see {@link peerKey}):
 * one tab holds one poll, so 50 tabs of one person or of one office behind one address, while one client
 * cannot take every slot of {@link DEFAULT_MAX_HELD_POLLS} and push everyone else to plain polling. Past
 * it, that peer's polls are answered at once.
 */
export const DEFAULT_MAX_HELD_POLLS_PER_PEER = 50;

/**
 * 1000 channels followed at once per peer, summed over its held polls: 50 tabs of 20 channels. Every
 * channel of a held poll costs a listener, a cursor entry and, for a channel nobody else follows (any
 * made-up name outside `/presence/…`), a store subscription; without this, one peer's 50 polls of 200
 * invented channels each would cost 10,000 of them. A poll that would take its peer past it is answered at
 * once instead of held (plain polling, which `message-bus-client` paces itself), like a poll past
 * {@link DEFAULT_MAX_HELD_POLLS_PER_PEER}.
 */
export const DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER = 1000;

/** Headers on every poll response: a poll answer is never reusable by any cache. */
export const NO_CACHE_HEADERS: Readonly<Record<string, string>> = Object.freeze(
  {
    'Cache-Control': 'must-revalidate, private, max-age=0',
    Pragma: 'no-cache',
    Expires: '0',
  },
);

/** The headers of every JSON answer of a poll. */
export const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...NO_CACHE_HEADERS,
  'Content-Type': 'application/json; charset=utf-8',
});

const STREAM_HEADERS = {
  ...NO_CACHE_HEADERS,
  'Content-Type': 'text/plain; charset=utf-8',
  // Ask nginx-style proxies not to buffer the stream (the client falls back to long polling if its first
  // chunk takes more than 3 s).
  'X-Accel-Buffering': 'no',
  // Without it Chromium holds back the first 512 bytes of a text/plain response to sniff its type, and a
  // stream of small chunks never reaches the page.
  'X-Content-Type-Options': 'nosniff',
};

const ALLOW = { Allow: 'POST, OPTIONS' };

/** `/<clientId>/poll[/anything]`, relative to `/message-bus`. */
const POLL_PATH = /^\/([^/]+)\/poll(?:\/.*)?$/;

/** Options of {@link PollHandler}. */
export interface PollHandlerOptions {
  /** The bus to answer polls from. */
  bus: MessageBus;
  /** Timers of the hold timeout. Default: the global timers, `unref`'d. */
  timers?: Timers;
  /** How long a poll is held when nothing is ready. Default {@link DEFAULT_LONG_POLL_MS}. */
  longPollMs?: number;
  /** Most polls held at once; above it polls are answered at once. Default {@link DEFAULT_MAX_HELD_POLLS}. */
  maxHeldPolls?: number;
  /** Most polls held at once for one peer. Default {@link DEFAULT_MAX_HELD_POLLS_PER_PEER}. */
  maxHeldPollsPerPeer?: number;
  /**
   * Most channels followed at once by one peer's held polls, summed over them; a poll that would go past
   * it is answered at once. Default {@link DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER}.
   */
  maxFollowedChannelsPerPeer?: number;
  /** Most channels in one poll (400 beyond). Default {@link DEFAULT_MAX_POLL_CHANNELS}. */
  maxChannelsPerPoll?: number;
  /** Where server-side failures are reported. Default `console`. */
  logger?: Logger;
  /**
   * Takes messages out of every batch before it is sent (and before deciding whether to hold): the fake
   * server's `dropNextMessage`. Default: none.
   */
  filter?: (messages: WireMessage[]) => WireMessage[];
  /** Who owns the handler, named in option errors. Default `PollHandler`. */
  name?: string;
}

/** A poll request as a transport hands it over; the handler asks for the body and the user only when needed. */
export interface PollHttpRequest {
  /** `POST`, `OPTIONS`, … */
  method: string;
  /** The path below `/message-bus`, still percent-encoded, without the query: `/<clientId>/poll`. */
  path: string;
  /** The query string (`dlp`). */
  query: { get(name: string): string | null };
  /** A request header by its lower-case name (`dont-chunk`). */
  header(name: string): string | undefined;
  /** Reads and parses the body; throws an {@link HttpError} (400, 413, 415) for a bad one. */
  body(limits: PollLimits): PollRequest | Promise<PollRequest>;
  /** Who is polling (the host's `currentUser` hook); `null`/`undefined` for anonymous. */
  user():
    CurrentUser | null | undefined | Promise<CurrentUser | null | undefined>;
  /**
   * The client's address: what anonymous polls count against in the per-peer caps (an IPv6 address by its
   * /64, see {@link peerKey}).
   */
  address?: string | undefined;
  /** Aborts when the client is gone: a held poll is then released without an answer. */
  signal?: AbortSignal;
}

/** A complete answer: status, headers and a JSON body (none for a 204). */
export interface PollResponse {
  kind: 'response';
  status: number;
  headers: Record<string, string>;
  /** The JSON value to send; `undefined` for no body. */
  body?: unknown;
  /**
   * `JSON.stringify(body)`, when the handler already has it (message answers: shared by every poll
   * answered with the same messages). A transport writes it instead of serialising `body` again.
   */
  text?: string;
}

/** A long poll held open: `response` settles with its answer, or `null` when the client went away. */
export interface HeldPollAnswer {
  kind: 'held';
  response: Promise<PollResponse | null>;
}

/** Where a {@link PollStream} writes. */
export interface ChunkSink {
  /** One framed chunk (`<json>\r\n|\r\n`). */
  write(chunk: string): void;
  /** The stream ends, after `chunk` when given (the final `[]`; none after a failure). */
  end(chunk?: string): void;
}

/** A chunked (streamed) poll: send the status and headers, then `pipe` the chunks into the response. */
export interface PollStream {
  kind: 'stream';
  status: 200;
  headers: Record<string, string>;
  /** Starts delivering chunks to `sink`, those produced so far first. Call once. */
  pipe(sink: ChunkSink): void;
}

/** What {@link PollHandler.handle} answers. */
export type PollAnswer = PollResponse | HeldPollAnswer | PollStream;

/** Counters for tests and monitoring. */
export interface PollHandlerStats {
  /** Polls currently held open (long polls and streams). */
  heldPolls: number;
  /** Of those, chunked streams. */
  streams: number;
  /** Poll requests between arrival and their answer or hold (body read, auth, backlog read). */
  inFlight: number;
  /** Pending long-poll timers (one per held poll). */
  timers: number;
}

/** See the module documentation above. */
export class PollHandler {
  readonly bus: MessageBus;
  readonly #held = new Map<string, HeldPoll>();
  /** Held polls and the channels they follow, per peer (see {@link peerKey}). */
  readonly #perPeer = new Map<string, PeerLoad>();
  readonly #context: HoldContext;
  readonly #limits: PollLimits;
  readonly #maxHeldPolls: number;
  readonly #maxHeldPollsPerPeer: number;
  readonly #maxFollowedChannelsPerPeer: number;
  #inFlight = 0;
  #closing = false;

  constructor(options: PollHandlerOptions) {
    const name = options.name ?? 'PollHandler';
    this.bus = options.bus;
    this.#maxHeldPolls = integerOption(
      options.maxHeldPolls,
      DEFAULT_MAX_HELD_POLLS,
      'maxHeldPolls',
      0,
      name,
    );
    this.#maxHeldPollsPerPeer = integerOption(
      options.maxHeldPollsPerPeer,
      DEFAULT_MAX_HELD_POLLS_PER_PEER,
      'maxHeldPollsPerPeer',
      0,
      name,
    );
    this.#maxFollowedChannelsPerPeer = integerOption(
      options.maxFollowedChannelsPerPeer,
      DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER,
      'maxFollowedChannelsPerPeer',
      0,
      name,
    );
    this.#limits = {
      maxChannels: integerOption(
        options.maxChannelsPerPoll,
        DEFAULT_MAX_POLL_CHANNELS,
        'maxChannelsPerPoll',
        1,
        name,
      ),
    };
    const held = this.#held;
    const perPeer = this.#perPeer;
    this.#context = {
      bus: options.bus,
      timers: options.timers ?? globalTimers,
      longPollMs: integerOption(
        options.longPollMs,
        DEFAULT_LONG_POLL_MS,
        'longPollMs',
        1,
        name,
      ),
      logger: options.logger ?? consoleLogger,
      filter: options.filter ?? ((messages) => messages),
      pendingTimers: 0,
      add(poll) {
        held.set(poll.slot, poll);
        const load = perPeer.get(poll.peer) ?? { polls: 0, channels: 0 };
        load.polls += 1;
        load.channels += poll.channels;
        perPeer.set(poll.peer, load);
      },
      remove(poll) {
        if (held.get(poll.slot) === poll) held.delete(poll.slot);
        const load = perPeer.get(poll.peer);
        if (!load) return;
        load.polls -= 1;
        load.channels -= poll.channels;
        if (load.polls <= 0) perPeer.delete(poll.peer);
      },
    };
  }

  /** Answers one request to `/message-bus/…`. Never throws: failures are error answers. */
  async handle(request: PollHttpRequest): Promise<PollAnswer> {
    const match = POLL_PATH.exec(request.path);
    if (!match) {
      return this.#error(
        HttpError.notFound(
          'Not found. Poll with POST /message-bus/<clientId>/poll.',
        ),
      );
    }
    if (request.method === 'OPTIONS') {
      return {
        kind: 'response',
        status: 204,
        headers: { ...NO_CACHE_HEADERS, ...ALLOW },
      };
    }
    if (request.method !== 'POST') {
      return this.#error(
        new HttpError(405, 'invalid_parameters', 'Poll with POST.'),
        ALLOW,
      );
    }
    let clientId: string;
    try {
      clientId = decodeURIComponent(match[1]!);
    } catch {
      clientId = '';
    }
    if (!isValidClientId(clientId)) {
      return this.#error(
        HttpError.invalidParameters(
          'The client id must be a non-blank string of at most 64 characters.',
        ),
      );
    }
    this.#inFlight += 1;
    try {
      return await this.#poll(request, clientId);
    } catch (error) {
      return this.#error(error);
    } finally {
      this.#inFlight -= 1;
    }
  }

  /** Current counters. */
  stats(): PollHandlerStats {
    let streams = 0;
    for (const poll of this.#held.values()) if (poll.chunked) streams += 1;
    return {
      heldPolls: this.#held.size,
      streams,
      inFlight: this.#inFlight,
      timers: this.#context.pendingTimers,
    };
  }

  /**
   * Graceful shutdown: answers every held poll now (`[]` or the final chunk) and releases its
   * subscriptions; later polls are answered at once. Does not close the bus.
   */
  close(): void {
    this.#closing = true;
    for (const poll of [...this.#held.values()]) poll.finish('closing');
  }

  async #poll(request: PollHttpRequest, clientId: string): Promise<PollAnswer> {
    const poll = await request.body(this.#limits);
    const requester: BusRequester = {
      clientId,
      user: toBusUser(await request.user()),
    };
    const peer = peerKey(requester.user, request.address);
    const dlp = request.query.get('dlp') === 't';
    const chunked =
      !dlp && (request.header('dont-chunk') ?? '').toLowerCase() !== 'true';

    // Polls replace each other (`__seq`) only within one peer: a client id is no secret (it is in every
    // poll URL), and another peer naming it must not silence or evict the real client's poll.
    const slot = heldSlot(peer, clientId);
    // A stale poll (the held one is newer): answer it empty at once, leave the newer one alone.
    const previous = this.#held.get(slot);
    if (previous && previous.seq > poll.seq) return json([]);
    previous?.finish('replaced');

    let result;
    try {
      result = await this.bus.poll(poll, requester);
    } catch (error) {
      this.#context.logger.error('message bus: answering a poll failed', {
        clientId,
        error,
      });
      throw unavailable();
    }
    const ready = this.#context.filter(result.messages);
    // What holding costs: the channels the poll may follow (forbidden ones are not watched).
    const channels = Object.keys(result.cursor).length;
    // A capped answer goes out whole at once (never streamed on): the client's next poll continues.
    if (
      request.signal?.aborted ||
      result.truncated ||
      !this.#shouldHold(poll, dlp, chunked, ready, slot, peer, channels)
    ) {
      return json(ready);
    }
    this.#held.get(slot)?.finish('replaced');
    const held = new HeldPoll(
      this.#context,
      clientId,
      poll.seq,
      chunked,
      peer,
      channels,
      request.signal,
    );
    held.start(result.cursor, requester, ready);
    return held.answer;
  }

  /** Should this poll be held (long poll or stream) rather than answered at once? */
  #shouldHold(
    request: PollRequest,
    dlp: boolean,
    chunked: boolean,
    ready: WireMessage[],
    slot: string,
    peer: string,
    channels: number,
  ): boolean {
    if (dlp || this.#closing || request.positions.length === 0) return false;
    // A long poll with something to say answers now; a stream sends it as its first chunk and stays open.
    if (!chunked && ready.length > 0) return false;
    const current = this.#held.get(slot);
    // Another poll of this client arrived while this one read the backlog, and it is newer: this one is stale.
    if (current && current.seq > request.seq) return false;
    // `current` is replaced by this one, so neither counts it.
    const others = this.#held.size - (current ? 1 : 0);
    const load = this.#perPeer.get(peer);
    const mine = (load?.polls ?? 0) - (current ? 1 : 0);
    const followed = (load?.channels ?? 0) - (current?.channels ?? 0);
    return (
      others < this.#maxHeldPolls &&
      mine < this.#maxHeldPollsPerPeer &&
      followed + channels <= this.#maxFollowedChannelsPerPeer
    );
  }

  #error(error: unknown, extraHeaders?: Record<string, string>): PollResponse {
    const response = errorResponse(error, extraHeaders);
    // HttpErrors are expected outcomes (logged where they arise, if at all); anything else is a bug to see.
    if (response.status >= 500 && !(error instanceof HttpError))
      this.#context.logger.error('message bus: poll failed', { error });
    return response;
  }
}

/** What a {@link HeldPoll} needs of its handler. */
interface HoldContext {
  readonly bus: MessageBus;
  readonly timers: Timers;
  readonly longPollMs: number;
  readonly logger: Logger;
  readonly filter: (messages: WireMessage[]) => WireMessage[];
  pendingTimers: number;
  add(poll: HeldPoll): void;
  remove(poll: HeldPoll): void;
}

/** What one peer's held polls take: how many, and how many channels they follow in all. */
interface PeerLoad {
  polls: number;
  channels: number;
}

/** Where a held poll is kept: one slot per client id within a peer. */
function heldSlot(peer: string, clientId: string): string {
  return `${peer}\n${clientId}`;
}

type FinishReason = 'timeout' | 'replaced' | 'closing' | 'aborted' | 'failed';

/** One held poll: a long poll (one answer) or a stream (chunks until the timeout). */
class HeldPoll {
  readonly clientId: string;
  readonly seq: number;
  readonly chunked: boolean;
  readonly peer: string;
  /** How many channels it follows (its share of the peer's followed-channel cap). */
  readonly channels: number;
  readonly slot: string;
  readonly answer: HeldPollAnswer | PollStream;
  readonly #context: HoldContext;
  readonly #signal: AbortSignal | undefined;
  #stream: ChunkStream | null = null;
  #resolve: (response: PollResponse | null) => void = () => {};
  #watch: BusWatch | null = null;
  #timer: unknown = null;
  #done = false;

  constructor(
    context: HoldContext,
    clientId: string,
    seq: number,
    chunked: boolean,
    peer: string,
    channels: number,
    signal: AbortSignal | undefined,
  ) {
    this.#context = context;
    this.clientId = clientId;
    this.seq = seq;
    this.chunked = chunked;
    this.peer = peer;
    this.channels = channels;
    this.slot = heldSlot(peer, clientId);
    this.#signal = signal;
    if (chunked) {
      const stream = new ChunkStream();
      this.#stream = stream;
      this.answer = {
        kind: 'stream',
        status: 200,
        headers: { ...STREAM_HEADERS },
        pipe: (sink) => stream.pipe(sink),
      };
    } else {
      this.answer = {
        kind: 'held',
        response: new Promise((resolve) => (this.#resolve = resolve)),
      };
    }
  }

  /** Starts holding: registers, arms the timeout, writes the first chunk, follows the cursor. */
  start(
    cursor: Record<string, number>,
    requester: BusRequester,
    ready: WireMessage[],
  ): void {
    const context = this.#context;
    context.add(this);
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#timer = context.timers.setTimeout(
      () => this.finish('timeout'),
      context.longPollMs,
    );
    context.pendingTimers += 1;
    this.#stream?.write(encodeChunk(ready));
    context.bus
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
   * were filtered out meanwhile); `aborted` only releases (the client is gone); `failed` answers 503, or
   * ends a stream without its final chunk.
   */
  finish(reason: FinishReason): void {
    if (this.#done) return;
    const status = this.#release();
    const stream = this.#stream;
    if (reason === 'aborted') {
      stream?.close();
      this.#resolve(null);
    } else if (reason === 'failed') {
      stream?.end();
      this.#resolve(errorResponse(unavailable()));
    } else if (stream) {
      // A stream always ends with an empty chunk; skipped messages are reported in a chunk before it.
      if (status) stream.write(encodeChunk([status]));
      stream.end(encodeChunk([]));
    } else {
      this.#resolve(json(status ? [status] : []));
    }
  }

  readonly #onAbort = (): void => this.finish('aborted');

  /**
   * Releases the timer, the watch (and so its subscriptions) and the registration, all at once. Returns
   * the status entry for messages filtered out while held, if any.
   */
  #release(): WireMessage | null {
    this.#done = true;
    if (this.#timer !== null) {
      this.#context.timers.clearTimeout(this.#timer);
      this.#context.pendingTimers -= 1;
      this.#timer = null;
    }
    const status = this.#watch?.skippedStatus() ?? null;
    this.#watch?.close();
    this.#watch = null;
    this.#context.remove(this);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    return status;
  }

  #deliver(batch: WireMessage[]): void {
    if (this.#done) return;
    const messages = this.#context.filter(batch);
    if (messages.length === 0) return;
    if (this.#stream) {
      this.#stream.write(encodeChunk(messages));
      return;
    }
    // A long poll answers with the first messages that arrive (they already carry any status entry).
    this.#release();
    this.#resolve(json(messages));
  }

  #fail(error: unknown): void {
    if (this.#done) return;
    this.#context.logger.error('message bus: a held poll failed', {
      clientId: this.clientId,
      error,
    });
    this.finish('failed');
  }
}

/** Chunks of a stream, kept until the transport pipes them somewhere. */
class ChunkStream {
  #sink: ChunkSink | null = null;
  #queue: string[] = [];
  /** `undefined`: open; `null`: ended without a last chunk; a string: ended with it. */
  #last: string | null | undefined = undefined;
  #closed = false;

  pipe(sink: ChunkSink): void {
    if (this.#sink || this.#closed) return;
    this.#sink = sink;
    while (this.#queue.length > 0 && !this.#closed)
      sink.write(this.#queue.shift()!);
    if (this.#last !== undefined && !this.#closed) this.#finish();
  }

  write(chunk: string): void {
    if (this.#closed || this.#last !== undefined) return;
    if (this.#sink) this.#sink.write(chunk);
    else this.#queue.push(chunk);
  }

  end(last?: string): void {
    if (this.#closed || this.#last !== undefined) return;
    this.#last = last ?? null;
    if (this.#sink) this.#finish();
  }

  /** The reader is gone: nothing more is written, not even the end. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  #finish(): void {
    const sink = this.#sink!;
    const last = this.#last;
    this.#closed = true;
    if (last === null || last === undefined) sink.end();
    else sink.end(last);
  }
}

function unavailable(): HttpError {
  return HttpError.serviceUnavailable(
    'The message bus is temporarily unavailable.',
  );
}

/** The JSON error answer for `error` (`{"errors":[…],"error_type":…}`, with its status and headers). */
function errorResponse(
  error: unknown,
  extraHeaders?: Record<string, string>,
): PollResponse {
  const { status, body, headers } = toErrorResponse(error);
  return {
    kind: 'response',
    status,
    headers: { ...JSON_HEADERS, ...headers, ...extraHeaders },
    body,
  };
}

function json(messages: readonly WireMessage[]): PollResponse {
  return {
    kind: 'response',
    status: 200,
    headers: { ...JSON_HEADERS },
    body: messages,
    text: answerJson(messages),
  };
}

/** Only what audience filtering and `canFollow` need; a malformed hook result is a loud host bug. */
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

/**
 * `value`, or `fallback` when it is undefined; anything but a safe integer ≥ `min` is a TypeError naming
 * the option, e.g. `messageBusRouter: longPollMs must be a positive integer (got 0)`.
 */
export function integerOption(
  value: number | undefined,
  fallback: number,
  option: string,
  min: 0 | 1,
  owner: string,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TypeError(
      `${owner}: ${option} must be a ${min === 1 ? 'positive' : 'non-negative'} integer (got ${String(value)})`,
    );
  }
  return value;
}
