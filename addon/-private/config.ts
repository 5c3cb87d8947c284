/**
 * Configuration read from the host app's `config/environment.js`, under `ENV['ember-presence']`. Every
 * field is optional. The config is serialised into the page as JSON, so it holds only plain values.
 *
 * @example
 * // config/environment.js
 * ENV['ember-presence'] = { baseUrl: '/', csrf: { metaName: 'csrf-token' } };
 * if (environment === 'test') {
 *   ENV['ember-presence'] = { debounceMs: 0, throttleMs: 0 };
 * }
 */
export interface PresenceConfig {
  /** Where `presence/get`, `presence/update` and `message-bus/` live. Default `'/'`. */
  baseUrl?: string;
  /** Interval of the "still here" request while anything is entered. Default 30000. */
  heartbeatMs?: number;
  /** How long to wait for more changes before sending an update. Default 500. */
  debounceMs?: number;
  /** Minimum time between two update requests. Default 1000. */
  throttleMs?: number;
  /** First retry delay after a failed update; doubles each failure. Default 500. */
  backoffMinMs?: number;
  /** Upper bound of that delay. Default 30000. */
  backoffMaxMs?: number;
  /** How long to wait after a 429 that did not say (`extras.wait_seconds`). Default 10000. */
  rateLimitWaitMs?: number;
  /**
   * How often `subscribe()` retries its first `GET /presence/get` while the server is unreachable or
   * answers 5xx/408/429 (the promise stays pending meanwhile). Default 5000.
   */
  subscribeRetryMs?: number;
  /**
   * Whether the addon configures (`baseUrl`, transport) and starts `message-bus-client` itself. Set
   * `false` when the app already runs MessageBus; the addon then only subscribes. Default `true`.
   */
  startBus?: boolean;
  /**
   * Whether message-bus polls may stream their answer (chunked encoding), as the reference server does.
   * Set `false` behind a proxy that buffers responses, and in tests that answer polls with pretender
   * (its fake XHR has no progress events: a streamed answer would reach the app late or not at all).
   * Applies when the addon starts the bus (`startBus`). Default `true`.
   */
  chunkedPolls?: boolean;
  /** `fetch`/XHR credentials mode; use `'include'` when `baseUrl` is on another origin. Default `'same-origin'`. */
  credentials?: RequestCredentials;
  /**
   * CSRF token for `POST /presence/update` and the unload beacon, read from `<meta name="…" content>` at
   * send time (Rails-style apps already render one). `presence.setCsrfToken()` overrides it.
   */
  csrf?: PresenceCsrfConfig;
}

/** Where the CSRF token comes from and how it is sent. */
export interface PresenceCsrfConfig {
  /** `<meta>` whose `content` is the token, e.g. `'csrf-token'`. */
  metaName?: string;
  /** Header carrying the token on fetch requests. Default `'X-CSRF-Token'`. */
  headerName?: string;
  /** Form field carrying the token in the unload beacon (which cannot set headers). Default `'authenticity_token'`. */
  fieldName?: string;
}

/** `PresenceConfig` with every default applied. */
export interface ResolvedPresenceConfig {
  baseUrl: string;
  heartbeatMs: number;
  debounceMs: number;
  throttleMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  rateLimitWaitMs: number;
  subscribeRetryMs: number;
  startBus: boolean;
  chunkedPolls: boolean;
  credentials: RequestCredentials;
  csrf: { metaName: string | undefined; headerName: string; fieldName: string };
}

export const DEFAULT_CONFIG: Readonly<Omit<ResolvedPresenceConfig, 'csrf'>> =
  Object.freeze({
    baseUrl: '/',
    // 30 s: the server's default 60 s timeout then tolerates one lost heartbeat.
    heartbeatMs: 30_000,
    // 500 ms / 1 s: a burst of enters and leaves while a page renders becomes one request.
    debounceMs: 500,
    throttleMs: 1_000,
    backoffMinMs: 500,
    // 30 s cap: a recovering server is retried about as often as the heartbeat would talk to it anyway.
    backoffMaxMs: 30_000,
    rateLimitWaitMs: 10_000,
    // 5 s: as Discourse's client retries its initial GET.
    subscribeRetryMs: 5_000,
    startBus: true,
    chunkedPolls: true,
    credentials: 'same-origin',
  });

const DURATIONS = [
  'heartbeatMs',
  'debounceMs',
  'throttleMs',
  'backoffMinMs',
  'backoffMaxMs',
  'rateLimitWaitMs',
  'subscribeRetryMs',
] as const;

/**
 * Applies defaults and validates. Throws an error naming the fix for values that would break the client
 * (a negative debounce, a zero heartbeat, …) rather than misbehaving quietly.
 */
export function resolveConfig(input: unknown): ResolvedPresenceConfig {
  const raw = (input ?? {}) as PresenceConfig;
  if (typeof raw !== 'object') {
    throw new Error(
      `ember-presence: ENV['ember-presence'] must be an object, got ${typeof raw}. Fix it in config/environment.js.`,
    );
  }
  const resolved: ResolvedPresenceConfig = {
    ...DEFAULT_CONFIG,
    csrf: {
      metaName: undefined,
      headerName: 'X-CSRF-Token',
      fieldName: 'authenticity_token',
    },
  };

  for (const key of DURATIONS) {
    const value = raw[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new Error(
        `ember-presence: ENV['ember-presence'].${key} must be a number of milliseconds ≥ 0, got ${String(value)}. Fix it in config/environment.js.`,
      );
    }
    resolved[key] = value;
  }
  if (resolved.heartbeatMs < 1_000) {
    throw new Error(
      `ember-presence: ENV['ember-presence'].heartbeatMs must be at least 1000 (it must stay below the channel timeout, 60 s by default), got ${resolved.heartbeatMs}.`,
    );
  }
  if (resolved.subscribeRetryMs < 100) {
    throw new Error(
      `ember-presence: ENV['ember-presence'].subscribeRetryMs must be at least 100 (a failing server would otherwise be asked in a tight loop), got ${resolved.subscribeRetryMs}.`,
    );
  }
  if (resolved.backoffMaxMs < resolved.backoffMinMs) {
    throw new Error(
      `ember-presence: ENV['ember-presence'].backoffMaxMs (${resolved.backoffMaxMs}) must not be below backoffMinMs (${resolved.backoffMinMs}).`,
    );
  }

  if (raw.baseUrl !== undefined) {
    if (typeof raw.baseUrl !== 'string' || raw.baseUrl === '') {
      throw new Error(
        `ember-presence: ENV['ember-presence'].baseUrl must be a non-empty string such as '/' or 'https://chat.example.com/'.`,
      );
    }
    resolved.baseUrl = raw.baseUrl.endsWith('/')
      ? raw.baseUrl
      : `${raw.baseUrl}/`;
  }
  for (const key of ['startBus', 'chunkedPolls'] as const) {
    const value = raw[key];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') {
      throw new Error(
        `ember-presence: ENV['ember-presence'].${key} must be true or false, got ${JSON.stringify(value)}. Fix it in config/environment.js.`,
      );
    }
    resolved[key] = value;
  }
  if (raw.credentials !== undefined) resolved.credentials = raw.credentials;
  if (raw.csrf) {
    resolved.csrf = {
      metaName: raw.csrf.metaName,
      headerName: raw.csrf.headerName ?? resolved.csrf.headerName,
      fieldName: raw.csrf.fieldName ?? resolved.csrf.fieldName,
    };
  }
  return resolved;
}
