/**
 * The one error shape of the server. Everything that ends a request early throws (or returns) an
 * {@link HttpError}; one function, {@link toErrorResponse}, turns any thrown value into the wire format
 * `{"errors":["<human message>"],"error_type":"<code>","extras"?:{…}}` with the right status. The Express
 * error middleware and the in-browser fake server both call it, so their errors cannot drift apart.
 */

/**
 * Stable machine-readable error codes (`error_type` on the wire). Clients branch on these, never on the
 * human message.
 */
export type ErrorCode =
  | 'invalid_parameters'
  | 'not_logged_in'
  | 'invalid_access'
  | 'bad_csrf'
  | 'not_found'
  | 'payload_too_large'
  | 'rate_limit'
  | 'service_unavailable'
  | 'server_error';

/**
 * An {@link ErrorCode}, or another stable code chosen by host code (`string & {}` keeps editor completion
 * for the known ones).
 */
export type ErrorType = ErrorCode | (string & {});

/** The JSON body of every error response. */
export interface ErrorBody {
  errors: string[];
  error_type: ErrorType;
  extras?: Record<string, unknown>;
}

/** A complete error response, independent of the transport. */
export interface ErrorResponse {
  status: number;
  body: ErrorBody;
  headers?: Record<string, string>;
}

/**
 * An error that maps to one HTTP response.
 *
 * @example throw new HttpError(400, 'invalid_parameters', 'client_id must be a non-blank string');
 * @example throw HttpError.rateLimited(7); // 429, Retry-After: 7, extras.wait_seconds = 7
 */
export class HttpError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** Stable code sent as `error_type`. */
  readonly code: ErrorType;
  /** Extra machine-readable details sent as `extras` (e.g. `{ wait_seconds: 7 }`). */
  readonly extras: Record<string, unknown> | undefined;
  /** Response headers that belong to this error (e.g. `Retry-After`). */
  readonly headers: Record<string, string> | undefined;

  constructor(
    status: number,
    code: ErrorType,
    message: string,
    extras?: Record<string, unknown>,
    headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.extras = extras;
    this.headers = headers;
  }

  /** 400 `invalid_parameters`: the request is malformed; `message` names the offending parameter. */
  static invalidParameters(message: string): HttpError {
    return new HttpError(400, 'invalid_parameters', message);
  }

  /** 403 `not_logged_in`: the endpoint needs a user. */
  static notLoggedIn(): HttpError {
    return new HttpError(
      403,
      'not_logged_in',
      'You need to be logged in to do that.',
    );
  }

  /**
   * 404 `not_found`. Used for channels that do not exist AND channels the requester may not view, with the
   * same message, so the two stay indistinguishable.
   */
  static notFound(message = 'The requested channel was not found.'): HttpError {
    return new HttpError(404, 'not_found', message);
  }

  /** 429 `rate_limit` with `Retry-After` and `extras.wait_seconds` (whole seconds, at least 1). */
  static rateLimited(waitSeconds: number): HttpError {
    const wait = Math.max(
      1,
      Math.ceil(Number.isFinite(waitSeconds) ? waitSeconds : 1),
    );
    return new HttpError(
      429,
      'rate_limit',
      `You've performed this action too many times. Please wait ${wait} seconds before trying again.`,
      { wait_seconds: wait },
      { 'Retry-After': String(wait) },
    );
  }

  /** 503 `service_unavailable`: the store (Redis) cannot be reached; retrying later is expected to work. */
  static serviceUnavailable(
    message = 'The presence service is temporarily unavailable.',
  ): HttpError {
    return new HttpError(503, 'service_unavailable', message);
  }
}

/**
 * Thrown by the server-side API when a user may not do something to a channel (e.g. `present` on a channel
 * that does not exist or that they may not enter). Over HTTP it would be a 403 `invalid_access`, but the
 * presence endpoints never let it escape: `POST /presence/update` answers `false` for that channel instead.
 */
export class InvalidAccess extends HttpError {
  constructor(message = 'You are not allowed to access this channel.') {
    super(403, 'invalid_access', message);
    this.name = 'InvalidAccess';
  }
}

/**
 * Thrown by the server-side API when a user who may enter a channel is refused because it already holds
 * its `maxUsers` distinct users. An {@link InvalidAccess} (code callers that treat every refusal alike
 * keep working); `POST /presence/update` answers `false` for the channel with the reason `"full"`
 * (docs/protocol.md §4).
 */
export class ChannelFull extends InvalidAccess {
  /** The reason `POST /presence/update` reports for the channel. */
  readonly reason = 'full';

  constructor(message = 'This channel is full.') {
    super(message);
    this.name = 'ChannelFull';
  }
}

/**
 * Errors thrown by body parsers and similar middleware (Express's `body-parser`, `http-errors`) carry a
 * 4xx `status` and `expose: true`; their message is safe to show and their status is right.
 */
function exposedClientError(
  err: unknown,
): { status: number; message: string } | null {
  if (typeof err !== 'object' || err === null) return null;
  const candidate = err as {
    status?: unknown;
    statusCode?: unknown;
    expose?: unknown;
    message?: unknown;
  };
  const status =
    typeof candidate.status === 'number'
      ? candidate.status
      : candidate.statusCode;
  if (
    typeof status !== 'number' ||
    status < 400 ||
    status > 499 ||
    candidate.expose !== true
  )
    return null;
  return {
    status,
    message:
      typeof candidate.message === 'string' ? candidate.message : 'Bad request',
  };
}

/**
 * Converts any thrown value into the error response to send. {@link HttpError}s keep their status, code,
 * extras and headers; exposed 4xx errors from body parsers become `invalid_parameters` (413 →
 * `payload_too_large`); everything else is a 500 `server_error` whose message reveals nothing internal
 * (log the original yourself).
 *
 * @example
 * app.use((err, req, res, next) => {
 *   const { status, body, headers } = toErrorResponse(err);
 *   res.status(status).set(headers ?? {}).json(body);
 * });
 */
export function toErrorResponse(err: unknown): ErrorResponse {
  if (err instanceof HttpError) {
    const response: ErrorResponse = {
      status: err.status,
      body: toErrorBody(err),
    };
    if (err.headers) response.headers = { ...err.headers };
    return response;
  }
  const exposed = exposedClientError(err);
  if (exposed) {
    const code: ErrorCode =
      exposed.status === 413 ? 'payload_too_large' : 'invalid_parameters';
    return {
      status: exposed.status,
      body: { errors: [exposed.message], error_type: code },
    };
  }
  return {
    status: 500,
    body: {
      errors: ['An internal error occurred.'],
      error_type: 'server_error',
    },
  };
}

/**
 * The JSON error body for any thrown value: `{"errors":[msg],"error_type":code,"extras"?:{…}}`.
 * Non-HTTP errors give the generic 500 body (see {@link toErrorResponse}).
 */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof HttpError) {
    const body: ErrorBody = { errors: [err.message], error_type: err.code };
    if (err.extras) body.extras = { ...err.extras };
    return body;
  }
  return toErrorResponse(err).body;
}

/** `value` if it is an Error, else an Error carrying its text: what a rejection or a throw should carry. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
