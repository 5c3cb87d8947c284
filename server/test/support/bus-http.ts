import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

import express, { type Express } from 'express';

import {
  CHUNK_SEPARATOR,
  decodeChunks,
  type WireMessage,
} from '../../src/core/message-bus/index.js';
import {
  messageBusRouter,
  type MessageBusRouter,
  type MessageBusRouterOptions,
} from '../../src/message-bus/router.js';

/** An Express app with the message-bus router, listening on an ephemeral port. */
/** `router.stats()` once nothing is held: what every leak test expects after polls end. */
export const IDLE_ROUTER_STATS = Object.freeze({
  heldPolls: 0,
  streams: 0,
  inFlight: 0,
  timers: 0,
  subscribedChannels: 0,
  listeners: 0,
  watches: 0,
  slowStreamsCutOff: 0,
});

export interface BusServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  router: MessageBusRouter;
  server: http.Server;
  /** Closes the router (answering held polls), then the server and every connection. */
  close(): Promise<void>;
}

/** Starts an app with `messageBusRouter(options)` mounted at the root; `setup` may add middleware first. */
export async function startBusServer(
  options: MessageBusRouterOptions,
  setup?: (app: Express) => void,
): Promise<BusServer> {
  const app = express();
  setup?.(app);
  const router = messageBusRouter(options);
  app.use(router);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    router,
    server,
    async close() {
      await router.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What to send in a poll. */
export interface PollInit {
  clientId?: string;
  /** Channel → last id, plus `__seq`; sent form-encoded unless `json`. */
  body?: Record<string, string | number | null>;
  /** Send the body as JSON. */
  json?: boolean;
  /** Raw body text (overrides `body`). */
  raw?: string;
  /** `?dlp=t` */
  dlp?: boolean;
  /** Send `Dont-Chunk: true` (long polling without streaming). */
  dontChunk?: boolean;
  headers?: Record<string, string>;
  method?: string;
  /** Full path instead of `/message-bus/<clientId>/poll`. */
  path?: string;
}

/** A poll in progress, read incrementally. */
export interface OpenPoll {
  /** Resolves with status and headers as soon as they arrive. */
  response: Promise<{ status: number; headers: IncomingHttpHeaders }>;
  /** Resolves with the whole body when the response ends. */
  body: Promise<string>;
  /** Text received so far. */
  received(): string;
  /** Resolves with the next complete chunk of a streamed response (chunks are consumed in order). */
  nextChunk(): Promise<WireMessage[]>;
  /** The response ended. */
  ended(): boolean;
  /** Closes the socket, as a browser does when the tab goes away or `xhr.abort()` runs. */
  abort(): void;
}

/** Opens a poll against `origin` with a fresh socket (no keep-alive, so an abort really closes it). */
export function openPoll(origin: string, init: PollInit = {}): OpenPoll {
  const clientId = init.clientId ?? 'client-1';
  const path =
    init.path ??
    `/message-bus/${encodeURIComponent(clientId)}/poll${init.dlp ? '?dlp=t' : ''}`;
  let payload = init.raw;
  const headers: Record<string, string> = { ...init.headers };
  if (payload === undefined && init.body) {
    if (init.json) {
      payload = JSON.stringify(init.body);
      headers['Content-Type'] ??= 'application/json';
    } else {
      const form = new URLSearchParams();
      for (const [key, value] of Object.entries(init.body))
        form.append(key, value === null ? '' : String(value));
      payload = form.toString();
      headers['Content-Type'] ??=
        'application/x-www-form-urlencoded; charset=UTF-8';
    }
  }
  if (init.dontChunk) headers['Dont-Chunk'] = 'true';
  if (payload !== undefined)
    headers['Content-Length'] = String(Buffer.byteLength(payload));

  let text = '';
  let consumed = 0;
  let done = false;
  const waiters: Array<() => void> = [];
  const wake = (): void => {
    for (const waiter of waiters.splice(0)) waiter();
  };
  let resolveResponse!: (value: {
    status: number;
    headers: IncomingHttpHeaders;
  }) => void;
  let resolveBody!: (value: string) => void;
  let rejectAll!: (error: Error) => void;
  const response = new Promise<{
    status: number;
    headers: IncomingHttpHeaders;
  }>((resolve, reject) => {
    resolveResponse = resolve;
    rejectAll = reject;
  });
  const body = new Promise<string>((resolve, reject) => {
    resolveBody = resolve;
    const previous = rejectAll;
    rejectAll = (error) => {
      previous(error);
      reject(error);
    };
  });
  // Aborting on purpose rejects these; nobody has to observe that.
  response.catch(() => {});
  body.catch(() => {});

  const request = http.request(
    `${origin}${path}`,
    { method: init.method ?? 'POST', headers, agent: false },
    (res) => {
      resolveResponse({ status: res.statusCode ?? 0, headers: res.headers });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        wake();
      });
      res.on('end', () => {
        done = true;
        resolveBody(text);
        wake();
      });
      res.on('error', (error) => rejectAll(error));
    },
  );
  request.on('error', (error) => {
    done = true;
    rejectAll(error);
    wake();
  });
  request.end(payload);

  return {
    response,
    body,
    received: () => text,
    ended: () => done,
    abort: () => request.destroy(),
    async nextChunk() {
      for (;;) {
        const end = text.indexOf(CHUNK_SEPARATOR, consumed);
        if (end !== -1) {
          const piece = text.slice(consumed, end + CHUNK_SEPARATOR.length);
          consumed = end + CHUNK_SEPARATOR.length;
          return decodeChunks(piece).chunks[0]!;
        }
        if (done)
          throw new Error(
            `the response ended without another chunk (received ${JSON.stringify(text)})`,
          );
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

/** Posts a poll and returns status, headers and parsed JSON body once it ends. */
export async function poll(
  origin: string,
  init: PollInit = {},
): Promise<{
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
  text: string;
}> {
  const open = openPoll(origin, init);
  const { status, headers } = await open.response;
  const text = await open.body;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status, headers, body, text };
}

/**
 * Waits until `condition()` holds, checking after every turn of the event loop, for at most `timeoutMs`.
 * Not a sleep: it returns as soon as the condition is true, and fails loudly otherwise.
 */
export async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
