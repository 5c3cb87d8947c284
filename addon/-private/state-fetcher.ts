import type { ResolvedPresenceConfig } from './config';
import { PresenceRequestError } from './errors';
import { presenceRequest } from './http';
import { getWaiter } from './waiters';

/** The server accepts at most this many channels per `GET /presence/get` (docs/protocol.md §3). */
export const MAX_CHANNELS_PER_GET = 50;

interface Pending {
  resolve: (state: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Batches channel state fetches: every name asked for in the same synchronous turn (typically one render
 * creating many components) goes into as few `GET /presence/get?channels[]=…` requests as the 50-name
 * limit allows. More names mean more requests, sent together; nobody is left waiting.
 */
export class StateFetcher {
  #config: ResolvedPresenceConfig;
  #headers: () => Record<string, string>;
  #pending = new Map<string, Pending[]>();
  #batchToken: unknown;
  #destroyed = false;

  /** `headers`: extra request headers, read at send time (the bearer token). */
  constructor(
    config: ResolvedPresenceConfig,
    headers: () => Record<string, string> = () => ({}),
  ) {
    this.#config = config;
    this.#headers = headers;
  }

  /**
   * Resolves with the channel's raw state object, or `null` when the channel does not exist or may not
   * be viewed. Rejects with `PresenceRequestError` when the request fails.
   */
  fetch(name: string): Promise<unknown> {
    if (this.#destroyed)
      return Promise.reject(
        new Error('ember-presence: the presence service was destroyed'),
      );
    return new Promise((resolve, reject) => {
      const waiting = this.#pending.get(name);
      if (waiting) waiting.push({ resolve, reject });
      else this.#pending.set(name, [{ resolve, reject }]);
      if (this.#batchToken === undefined) {
        this.#batchToken = getWaiter.beginAsync();
        queueMicrotask(() => this.#flush());
      }
    });
  }

  destroy(): void {
    this.#destroyed = true;
    this.#pending.clear();
    this.#endBatchWaiter();
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = new Map();
    const names = [...batch.keys()];
    for (let i = 0; i < names.length; i += MAX_CHANNELS_PER_GET) {
      const chunk = names.slice(i, i + MAX_CHANNELS_PER_GET);
      void this.#request(chunk, batch);
    }
    this.#endBatchWaiter();
  }

  async #request(
    names: string[],
    batch: Map<string, Pending[]>,
  ): Promise<void> {
    const token = getWaiter.beginAsync();
    try {
      const query = new URLSearchParams();
      for (const name of names) query.append('channels[]', name);
      const url = `${this.#config.baseUrl}presence/get?${query.toString()}`;
      const outcome = await presenceRequest(url, {
        method: 'GET',
        credentials: this.#config.credentials,
        headers: { Accept: 'application/json', ...this.#headers() },
      });
      for (const name of names) {
        const waiting = batch.get(name) ?? [];
        if (outcome.kind === 'ok') {
          const state = outcome.body[name];
          for (const { resolve } of waiting)
            resolve(state === undefined ? null : state);
        } else {
          const error =
            outcome.kind === 'rate-limited'
              ? new PresenceRequestError(
                  'GET /presence/get was rate limited',
                  429,
                  'rate_limit',
                )
              : outcome.error;
          for (const { reject } of waiting) reject(error);
        }
      }
    } finally {
      getWaiter.endAsync(token);
    }
  }

  #endBatchWaiter(): void {
    if (this.#batchToken === undefined) return;
    getWaiter.endAsync(this.#batchToken);
    this.#batchToken = undefined;
  }
}
