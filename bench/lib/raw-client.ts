import net from 'node:net';

import { nowMs } from './stats.js';

/** A completed response: when its last byte arrived and its body. */
export interface RawResponse {
  at: number;
  status: number;
  body: string;
}

/**
 * A minimal keep-alive HTTP/1.1 client on one raw socket: thousands of these cost far less than as many
 * `http.request`s, so the client side of the fan-out bench stays cheap next to the server it measures.
 * One request at a time; understands Content-Length and chunked bodies.
 */
export class RawClient {
  readonly #socket: net.Socket;
  #buffer = '';
  #pending: { resolve(r: RawResponse): void; reject(e: Error): void } | null =
    null;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () =>
      this.#fail(new Error('connection closed before the response ended')),
    );
  }

  /** Connects to 127.0.0.1:`port` (rejects after 10 s). */
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('connect timed out'));
      }, 10_000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawClient(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** Sends a POST and resolves with its response. */
  post(
    path: string,
    body: string,
    headers: Record<string, string> = {},
  ): Promise<RawResponse> {
    if (this.#pending)
      return Promise.reject(new Error('RawClient: one request at a time'));
    const head = [
      `POST ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Content-Type: application/x-www-form-urlencoded',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ].join('\r\n');
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#socket.write(`${head}\r\n\r\n${body}`);
    });
  }

  close(): void {
    this.#pending = null;
    this.#socket.destroy();
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end === -1 || !this.#pending) return;
    const head = this.#buffer.slice(0, end);
    const rest = this.#buffer.slice(end + 4);
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    let body: string;
    if (length) {
      if (rest.length < Number(length[1])) return;
      body = rest.slice(0, Number(length[1]));
      this.#buffer = rest.slice(Number(length[1]));
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const last = rest.indexOf('0\r\n\r\n');
      if (last === -1) return;
      body = rest.slice(0, last);
      this.#buffer = rest.slice(last + 5);
    } else {
      return;
    }
    const pending = this.#pending;
    this.#pending = null;
    pending.resolve({ at: nowMs(), status, body });
  }

  #fail(error: Error): void {
    const pending = this.#pending;
    this.#pending = null;
    pending?.reject(error);
  }
}

/** Opens `count` clients to `port`, `batch` connects at a time (the listen backlog is finite). */
export async function connectMany(
  port: number,
  count: number,
  batch = 250,
): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < count; i += batch) {
      clients.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(batch, count - i) }, () =>
            RawClient.connect(port),
          ),
        )),
      );
    }
  } catch (error) {
    for (const client of clients) client.close();
    throw error;
  }
  return clients;
}
