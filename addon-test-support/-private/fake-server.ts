import Pretender, { type ResponseHandler } from 'pretender';
import { buildWaiter } from '@ember/test-waiters';
import type { PresenceBus, PresenceClock } from 'ember-presence';
import {
  MemoryStore,
  MessageBus,
  PollHandler,
  PresenceCore,
  encodeChunk,
  handleGet,
  handleUpdate,
  parsePollBody,
  presenceBusChannel,
  presenceChannelAccess,
  toErrorResponse,
  type BusRequester,
  type ChannelConfigInput,
  type CurrentUser,
  type HandlerResponse,
  type PollResponse,
  type PrefixCallback,
  type PresenceUser,
  type UpdateOptions,
  type WireMessage,
} from 'ember-presence/test-support/-private/core';
import { bodyFields, bodyText } from './form-fields';

/** A user as tests describe them: only `id` and `username` are required. */
export interface FakeUser {
  id: number;
  username: string;
  name?: string | null;
  avatar_template?: string;
  groupIds?: readonly number[];
}

/** Options of `setupPresence`. */
export interface FakeServerOptions {
  /** The signed-in user of the app under test; `null` for an anonymous visitor. Default user 1 "me". */
  currentUser?: FakeUser | null;
  /** Channels that exist from the start, with their configs (see `registerChannel`). */
  channels?: Record<string, ChannelConfigInput>;
  /** Where the app's presence endpoints live; must match `ENV['ember-presence'].baseUrl`. Default `/`. */
  baseUrl?: string;
  /**
   * The per-user update rate limit, as on the real server (`{ limit: 20, windowMs: 10_000 }`). Off by default
   * in tests, since a fake clock that does not move would otherwise throttle a long test; turn it on to
   * test how your app behaves when rate limited.
   */
  rateLimit?: { limit: number; windowMs: number } | false;
  /**
   * The app's debounce before it sends an update, in fake-clock milliseconds. Default `0`: every change a
   * test makes is sent at once. Give your app's own value (the addon's default is 500) to test that a
   * burst of changes becomes one request: `settled()` then does not wait for the debounced update, and
   * `advanceClock(ms)` sends it.
   */
  debounceMs?: number;
  /** The app's minimum time between two updates, in fake-clock milliseconds. Default `0` (the addon's is 1000). */
  throttleMs?: number;
}

/**
 * The endpoints `failNextRequest` and `holdNextRequest` act on. Not the message-bus poll: under
 * `setupPresence` the app follows change messages in-process, without polling (lose or forge a message
 * with `dropNextMessage` and `deliverMessage` instead).
 */
export type FakeEndpoint = '/presence/get' | '/presence/update';

const ENDPOINTS: readonly FakeEndpoint[] = [
  '/presence/get',
  '/presence/update',
];

function checkEndpoint(endpoint: string, helper: string): void {
  if (!ENDPOINTS.includes(endpoint as FakeEndpoint)) {
    const why =
      endpoint === '/message-bus/poll'
        ? ' The app follows change messages in-process under setupPresence and never polls: use dropNextMessage() or deliverMessage() to lose or forge a message.'
        : '';
    throw new Error(
      `ember-presence/test-support: ${helper}() takes one of ${ENDPOINTS.map((e) => `'${e}'`).join(', ')}, got ${JSON.stringify(endpoint)}.${why}`,
    );
  }
}

/** The answer `failNextRequest` gives instead of the real one. */
export interface FakeFailure {
  /** HTTP status, e.g. 500, 403, 429. */
  status: number;
  /**
   * JSON body. Default `{ errors: [...], error_type: 'server_error' }`; for a 403 use e.g.
   * `{ errors: ['…'], error_type: 'not_logged_in', extras: { reason: 'token_expired' } }`, for a 429
   * `{ errors: ['…'], error_type: 'rate_limit', extras: { wait_seconds: 5 } }`.
   */
  body?: unknown;
  /** Response headers, e.g. `{ 'Retry-After': '5' }`. */
  headers?: Record<string, string>;
}

/**
 * One request the fake server answered, in `fakePresenceServer().requests`. List fields are arrays under
 * their bare name even with one item (`present_channels[]=a` is `{ present_channels: ['a'] }`), as Express
 * and pretender parse them.
 */
export interface FakeRequest {
  method: string;
  /** As the app sent it, query string included. */
  url: string;
  status: number;
  /** The query string's fields, e.g. `{ channels: ['/site/online'] }` for `GET /presence/get`. */
  query: Record<string, string | string[]>;
  /** The form (or JSON) body's fields, e.g. `{ client_id: '…', present_channels: ['/site/online'] }`. */
  body: unknown;
  /** The JSON the fake answered (or its text). */
  response: unknown;
}

/** What pretender hands a handler (its typings leave out the XHR fields we read). */
type PretenderRequest = Parameters<ResponseHandler>[0] & {
  method: string;
  url: string;
  requestBody: unknown;
  requestHeaders: Record<string, string>;
};

const DEFAULT_USER: FakeUser = { id: 1, username: 'me', name: 'Me' };

const deliveries = buildWaiter('ember-presence:fake-delivery');

/** Fills in what a test left out. */
export function toCurrentUser(user: FakeUser): CurrentUser {
  if (
    !user ||
    typeof user.id !== 'number' ||
    !Number.isSafeInteger(user.id) ||
    typeof user.username !== 'string'
  ) {
    throw new TypeError(
      `ember-presence/test-support: a user needs a numeric id and a username, e.g. { id: 2, username: 'ann' }; got ${JSON.stringify(user)}`,
    );
  }
  return {
    id: user.id,
    username: user.username,
    name: user.name === undefined ? user.username : user.name,
    avatar_template:
      user.avatar_template ?? `/letter_avatar/${user.username}/{size}.png`,
    groupIds: [...(user.groupIds ?? [])],
  };
}

/**
 * The presence server of a test: the real server core, MemoryStore and MessageBus (the very code the
 * Node server runs), answering the app's requests through pretender and delivering change messages to
 * the app's `presence` service in-process. Tests reach it through the helpers of
 * `ember-presence/test-support`; `fakePresenceServer()` gives it to tests that need more.
 */
export class FakePresenceServer {
  readonly store: MemoryStore;
  readonly core: PresenceCore;
  readonly bus: MessageBus;
  readonly clock: PresenceClock;
  /** Every request answered, oldest first. */
  readonly requests: FakeRequest[] = [];

  /**
   * HTTP message-bus polls the fake holds right now (long polls waiting for a message), from a page that
   * polls it over HTTP. Under `setupPresence` the app follows messages in-process: always 0 there.
   */
  get heldPolls(): number {
    return this.#polls.stats().heldPolls;
  }

  #pretender: Pretender;
  #currentUser: CurrentUser | null;
  #channels = new Map<string, ChannelConfigInput>();
  #prefixCallbacks = new Map<string, PrefixCallback>();
  #registeredPrefixes = new Set<string>();
  #updateOptions: UpdateOptions;
  #drops = new Map<string, number>();
  #held = new Set<AbortController>();
  /** The real server's poll handler: every rule of `POST /message-bus/<clientId>/poll`. */
  #polls: PollHandler;
  #subscriptions = new Set<{ close(): void }>();
  /** Answers to give instead of the real ones, per endpoint, oldest first (`failNextRequest`). */
  #failures = new Map<FakeEndpoint, FakeFailure[]>();
  /** Gates the next requests of an endpoint wait on before being answered (`holdNextRequest`). */
  #holds = new Map<FakeEndpoint, Promise<void>[]>();
  /** The app's bus subscriptions per bus channel, for `deliverMessage` with a chosen id. */
  #followers = new Map<
    string,
    Set<(data: unknown, messageId: number) => void>
  >();
  #clientSeq = 0;
  #closed = false;

  constructor(clock: PresenceClock, options: FakeServerOptions = {}) {
    this.clock = clock;
    this.store = new MemoryStore();
    this.core = new PresenceCore({
      store: this.store,
      clock: () => clock.now(),
      timers: clock,
      // Config changes made by a test apply to the very next request.
      configTtlMs: 0,
    });
    this.bus = new MessageBus({
      store: this.store,
      clock: () => clock.now(),
      // Held polls time out on the test's clock, never in real time.
      timers: clock,
      canFollow: presenceChannelAccess(this.core),
    });
    this.#polls = new PollHandler({
      bus: this.bus,
      // Held polls time out on the test's clock, never in real time.
      timers: clock,
      filter: (messages) => this.#takeDrops(messages),
      name: 'ember-presence/test-support',
    });
    this.#currentUser =
      options.currentUser === null
        ? null
        : toCurrentUser(options.currentUser ?? DEFAULT_USER);
    const rateLimit = options.rateLimit ?? false;
    this.#updateOptions = {
      rateLimit: rateLimit && {
        limit: rateLimit.limit,
        windowMs: rateLimit.windowMs,
      },
    };
    for (const [name, config] of Object.entries(options.channels ?? {})) {
      this.registerChannel(name, config);
    }
    this.#pretender = this.#install(normaliseBase(options.baseUrl ?? '/'));
    this.core.startSweeper();
  }

  /** The user the app under test is signed in as (`null`: anonymous). */
  get currentUser(): CurrentUser | null {
    return this.#currentUser;
  }

  set currentUser(user: FakeUser | null) {
    this.#currentUser = user === null ? null : toCurrentUser(user);
  }

  /**
   * Makes `name` exist with `config` (default `{ public: true }`: everyone may view it and every signed-in
   * user may enter it). Replaces an earlier config of the same name at once.
   */
  registerChannel(
    name: string,
    config: ChannelConfigInput = { public: true },
  ): void {
    const prefix = prefixOf(name);
    this.#channels.set(name, config);
    this.#ensurePrefix(prefix);
  }

  /** Removes a channel registered with `registerChannel`: it then behaves as if it never existed. */
  unregisterChannel(name: string): void {
    this.#channels.delete(name);
  }

  /** Registers a just-in-time config callback for a whole prefix, exactly as on the real server. */
  registerPrefix(prefix: string, callback: PrefixCallback): void {
    if (this.#prefixCallbacks.has(prefix)) {
      throw new Error(
        `ember-presence/test-support: prefix "${prefix}" is already registered in this test`,
      );
    }
    this.#prefixCallbacks.set(prefix, callback);
    this.#ensurePrefix(prefix);
  }

  /** The users present in `name` as the server sees them (no access check), sorted by id. */
  async presentUsers(name: string): Promise<PresenceUser[]> {
    const state = await this.store.state(name, false, this.clock.now());
    return 'users' in state ? [...state.users].sort((a, b) => a.id - b.id) : [];
  }

  /** The next change message of `name` is published (its id is used) but never reaches the app. */
  dropNextMessage(name: string): void {
    const bus = presenceBusChannel(name);
    this.#drops.set(bus, (this.#drops.get(bus) ?? 0) + 1);
  }

  /**
   * The next request to `endpoint` is answered with `failure` instead of the real answer (and changes
   * nothing on the server), e.g. `{ status: 500 }`, a 403 `not_logged_in`, or a 429 with `extras.
   * wait_seconds`. Several calls queue several answers.
   */
  failNextRequest(endpoint: FakeEndpoint, failure: FakeFailure): void {
    checkEndpoint(endpoint, 'failNextRequest');
    if (
      !Number.isInteger(failure?.status) ||
      failure.status < 100 ||
      failure.status > 599
    ) {
      throw new Error(
        `ember-presence/test-support: failNextRequest('${endpoint}', { status }) needs an HTTP status (100–599), got ${JSON.stringify(failure?.status)}.`,
      );
    }
    this.#failures.set(endpoint, [
      ...(this.#failures.get(endpoint) ?? []),
      failure,
    ]);
  }

  /**
   * The next request to `endpoint` waits, unanswered, until the returned function is called (it is then
   * answered as usual). The app's request waiter stays held meanwhile, so `settled()` waits for it.
   */
  holdNextRequest(endpoint: FakeEndpoint): () => void {
    checkEndpoint(endpoint, 'holdNextRequest');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.#holds.set(endpoint, [...(this.#holds.get(endpoint) ?? []), gate]);
    return release;
  }

  /**
   * Delivers a change message of channel `name` to the app only (the server's state and backlog do not
   * change): with `messageId` exactly as given — a repeated, skipped or malformed message, which the app
   * answers by resynchronising — else with the id that follows the channel's last one, so the app
   * applies it. Real changes are `joinChannel`/`leaveChannel`.
   */
  async deliverMessage(
    name: string,
    data: unknown,
    options: { messageId?: number } = {},
  ): Promise<void> {
    const bus = presenceBusChannel(name);
    const messageId =
      options.messageId ?? ((await this.store.lastIds([bus]))[bus] ?? 0) + 1;
    for (const onMessage of [...(this.#followers.get(bus) ?? [])])
      onMessage(data, messageId);
  }

  /** A fresh client id for another user's tab. */
  nextClientId(user: { id: number }): string {
    return `fake-${user.id}-${++this.#clientSeq}`;
  }

  /**
   * The transport the app's `presence` service uses in tests: change messages go straight from the
   * server's bus to the service, through the same poll logic (ids, audience filter) as over HTTP, and
   * each delivery holds a test waiter so `settled()` returns once the app has them.
   */
  createBus(): PresenceBus {
    const clientId = `test-client-${++this.#clientSeq}`;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    return {
      clientId,
      subscribe(channel, onMessage, lastId) {
        return server.#follow(clientId, channel, onMessage, lastId);
      },
    };
  }

  /** Stops everything: pretender, held polls, subscriptions, the sweeper, the store. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscription of this.#subscriptions) subscription.close();
    this.#subscriptions.clear();
    this.#polls.close();
    for (const held of this.#held) held.abort();
    this.#held.clear();
    this.#pretender.shutdown();
    await this.core.stop();
    await this.bus.close();
    await this.store.close();
  }

  #requester(clientId: string): BusRequester {
    const user = this.#currentUser;
    return {
      clientId,
      user: user ? { id: user.id, groupIds: user.groupIds } : null,
    };
  }

  #ensurePrefix(prefix: string): void {
    if (this.#registeredPrefixes.has(prefix)) return;
    this.#registeredPrefixes.add(prefix);
    this.core.registerPrefix(prefix, (name: string) => {
      const exact = this.#channels.get(name);
      if (exact) return exact;
      const callback = this.#prefixCallbacks.get(prefix);
      return callback ? callback(name) : null;
    });
  }

  #takeDrops(messages: WireMessage[]): WireMessage[] {
    return messages.filter((message) => {
      const pending = this.#drops.get(message.channel) ?? 0;
      if (pending === 0) return true;
      if (pending === 1) this.#drops.delete(message.channel);
      else this.#drops.set(message.channel, pending - 1);
      return false;
    });
  }

  #follow(
    clientId: string,
    channel: string,
    onMessage: (data: unknown, messageId: number) => void,
    lastId: number,
  ): () => void {
    let cursor: number | null = lastId;
    let closed = false;
    let chain: Promise<void> = Promise.resolve();
    const pending = new Set<unknown>();

    const pull = () => {
      const token = deliveries.beginAsync();
      pending.add(token);
      chain = chain
        .then(async () => {
          if (closed) return;
          const { messages, cursor: next } = await this.bus.poll(
            { positions: [{ channel, lastId: cursor }], seq: 0 },
            this.#requester(clientId),
          );
          cursor = next[channel] ?? cursor;
          for (const message of this.#takeDrops(messages)) {
            if (closed) return;
            if (message.channel === channel) {
              onMessage(message.data, message.message_id);
            }
          }
        })
        .catch((error: unknown) => {
          if (!closed)
            console.error('[ember-presence fake] delivery failed', error);
        })
        .finally(() => {
          pending.delete(token);
          deliveries.endAsync(token);
        });
    };

    const followers = this.#followers.get(channel) ?? new Set();
    followers.add(onMessage);
    this.#followers.set(channel, followers);

    let release: (() => Promise<void>) | undefined;
    const subscription = {
      close: () => {
        if (closed) return;
        closed = true;
        followers.delete(onMessage);
        void release?.();
        for (const token of pending) deliveries.endAsync(token);
        pending.clear();
      },
    };
    this.#subscriptions.add(subscription);

    const ready = deliveries.beginAsync();
    this.store
      .subscribe([channel], () => pull())
      .then((stop: () => Promise<void>) => {
        release = stop;
        if (closed) void stop();
        else pull(); // catch up on anything published before the subscription started
      })
      .catch((error: unknown) =>
        console.error('[ember-presence fake] subscribe failed', error),
      )
      .finally(() => deliveries.endAsync(ready));

    return () => {
      subscription.close();
      this.#subscriptions.delete(subscription);
    };
  }

  #install(base: string): Pretender {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    const answer =
      (
        endpoint: FakeEndpoint | '/message-bus/poll',
        run: (request: PretenderRequest) => Promise<HandlerResponse>,
      ): ResponseHandler =>
      async (raw) => {
        const request = raw as PretenderRequest;
        const gate = server.#holds.get(endpoint as FakeEndpoint)?.shift();
        if (gate) await gate;
        const failure = server.#failures.get(endpoint as FakeEndpoint)?.shift();
        let result: HandlerResponse;
        if (failure) {
          result = {
            status: failure.status,
            body: failure.body ?? {
              errors: [`Failed by failNextRequest('${endpoint}')`],
              error_type: 'server_error',
            },
            ...(failure.headers ? { headers: failure.headers } : {}),
          };
        } else {
          try {
            result = await run(request);
          } catch (error) {
            const { status, body, headers } = toErrorResponse(error);
            result = { status, body, headers };
          }
        }
        const text =
          typeof result.body === 'string'
            ? result.body
            : JSON.stringify(result.body);
        server.requests.push({
          method: request.method,
          url: request.url,
          status: result.status,
          query: { ...request.queryParams },
          body: bodyFields(request.requestBody, contentType(request)),
          response: result.body,
        });
        return [
          result.status,
          {
            'Content-Type':
              typeof result.body === 'string'
                ? 'text/plain; charset=utf-8'
                : 'application/json',
            ...(result.headers ?? {}),
          },
          text,
        ];
      };

    return new Pretender(function () {
      this.get(
        `${base}presence/get`,
        answer('/presence/get', (request) =>
          handleGet(server.core, request.queryParams, server.#currentUser),
        ),
      );
      this.post(
        `${base}presence/update`,
        answer('/presence/update', (request) =>
          handleUpdate(
            server.core,
            bodyFields(request.requestBody, contentType(request)),
            server.#currentUser,
            server.#updateOptions,
          ),
        ),
      );
      // Every method and path under message-bus/: the shared handler answers 404, 405 and OPTIONS itself.
      const poll = answer('/message-bus/poll', (request) =>
        server.#poll(request, `${base}message-bus`),
      );
      for (const verb of [
        'get',
        'post',
        'put',
        'delete',
        'patch',
        'head',
        'options',
      ] as const) {
        this[verb](`${base}message-bus/*path`, poll);
      }
    });
  }

  /**
   * A poll through the shared handler. Pretender cannot stream, so a chunked poll is answered with the
   * chunks sent until the first one that carries messages (or until the stream ends). A held poll waits
   * outside any test waiter, so settled() never waits for it.
   */
  async #poll(
    request: PretenderRequest,
    mount: string,
  ): Promise<HandlerResponse> {
    const url = new URL(request.url, 'http://fake.invalid');
    const abort = new AbortController();
    this.#held.add(abort);
    try {
      const answer = await this.#polls.handle({
        method: request.method.toUpperCase(),
        path: url.pathname.slice(mount.length),
        query: url.searchParams,
        header: (name) => header(request, name),
        body: (limits) =>
          parsePollBody(
            bodyText(request.requestBody),
            contentType(request),
            limits,
          ),
        user: () => this.#currentUser,
        signal: abort.signal,
      });
      if (answer.kind === 'response') return toHandlerResponse(answer);
      if (answer.kind === 'held') {
        const response = await answer.response;
        return response
          ? toHandlerResponse(response)
          : { status: 200, body: [] };
      }
      const text = await new Promise<string>((resolve) => {
        let sent = '';
        abort.signal.addEventListener('abort', () => resolve(sent));
        answer.pipe({
          write(chunk) {
            sent += chunk;
            if (chunk !== encodeChunk([])) resolve(sent);
          },
          end(chunk = '') {
            resolve(sent + chunk);
          },
        });
      });
      return { status: answer.status, headers: answer.headers, body: text };
    } finally {
      // Releases a stream cut short after its first messages; a no-op for a poll that was answered.
      abort.abort();
      this.#held.delete(abort);
    }
  }
}

function toHandlerResponse({
  status,
  headers,
  body,
}: PollResponse): HandlerResponse {
  return { status, headers, body: body === undefined ? '' : body };
}

function contentType(request: {
  requestHeaders: Record<string, string>;
}): string | undefined {
  return header(request, 'content-type');
}

function header(
  request: { requestHeaders: Record<string, string> },
  name: string,
): string | undefined {
  for (const [key, value] of Object.entries(request.requestHeaders ?? {})) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

function normaliseBase(base: string): string {
  const path = base.replace(/^https?:\/\/[^/]+/, '');
  return path.endsWith('/') ? path : `${path}/`;
}

function prefixOf(name: string): string {
  const match = /^\/([a-zA-Z0-9_-]+)\/./.exec(
    typeof name === 'string' ? name : '',
  );
  if (!match?.[1]) {
    throw new TypeError(
      `ember-presence/test-support: ${JSON.stringify(name)} is not a channel name; use "/<prefix>/<rest>", e.g. "/topic/1/reply"`,
    );
  }
  return match[1];
}
