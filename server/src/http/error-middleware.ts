import type {
  ErrorRequestHandler,
  NextFunction,
  Request,
  RequestHandler,
  Response,
} from 'express';
import { HttpError, toErrorResponse } from '../core/errors.js';
import { describeError, silentLogger, type Logger } from './logger.js';

/**
 * The ONE place where errors become HTTP responses: `{"errors":[…],"error_type":…,"extras"?:…}` with the
 * status of the {@link HttpError} (see `toErrorResponse`). Besides HttpErrors it maps:
 * - store/Redis unavailability (connection refused or closed, command timeout, offline queue disabled)
 *   → 503 `service_unavailable`, quickly, so clients back off and retry while the store recovers;
 * - body-parser errors (too large, aborted, bad charset) → their 4xx;
 * - anything else → 500 `server_error` with a generic message; the error and its stack go to the log,
 *   never to the client.
 *
 * Mount it after the routes it covers. When a response has already started (a streamed long-poll),
 * the connection is ended instead.
 */
export function errorMiddleware(
  logger: Logger = silentLogger,
): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, next: NextFunction) => {
    const mapped = isStoreUnavailable(err)
      ? HttpError.serviceUnavailable()
      : err;
    const { status, body, headers } = toErrorResponse(mapped);
    if (status >= 500) {
      logger[status === 503 ? 'warn' : 'error'](
        status === 503 ? 'store unavailable' : 'request failed',
        {
          method: req.method,
          path: req.path,
          status,
          error: describeError(err),
        },
      );
    } else {
      logger.debug('request rejected', {
        method: req.method,
        path: req.path,
        status,
        error_type: body.error_type,
      });
    }
    if (res.headersSent) {
      // Too late for a JSON error: end what was started so the client sees a failed/closed response.
      if (!res.writableEnded) res.end();
      return;
    }
    // Express's own parser errors may ask to close the connection (e.g. 413): keep its hints.
    res.status(status);
    if (headers) res.set(headers);
    res.set('Cache-Control', 'no-store').json(body);
    void next;
  };
}

/**
 * A terminal handler answering 404 `not_found` in the JSON error shape (for the standalone app, so a
 * mistyped URL gets JSON rather than Express's HTML page).
 */
export function notFoundHandler(): RequestHandler {
  return (_req, _res, next) => next(HttpError.notFound('No such endpoint.'));
}

// Error codes that mean "the network path to the store is broken", not "the request is wrong".
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'NR_CLOSED',
  'STORE_UNAVAILABLE',
]);

// ioredis reports unavailability through these messages (enableOfflineQueue: false, commandTimeout,
// maxRetriesPerRequest, a closed connection).
const UNAVAILABLE_MESSAGES =
  /Stream isn't writeable|enableOfflineQueue|Command timed out|Connection is closed|Reached the max retries per request|connect ECONNREFUSED|LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN/;

/**
 * `true` when `err` means the store cannot be reached right now (as opposed to a bug). Stores may also
 * signal it explicitly with an error whose `code` is `STORE_UNAVAILABLE` or whose name is
 * `StoreUnavailableError`.
 */
export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof HttpError) return false;
  if (
    err.name === 'StoreUnavailableError' ||
    err.name === 'MaxRetriesPerRequestError'
  )
    return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  if (UNAVAILABLE_MESSAGES.test(err.message)) return true;
  // An aggregate (e.g. a cluster fan-out) is unavailable when its cause is.
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isStoreUnavailable(cause);
}
