import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { normaliseOrigin } from './csrf.js';

/**
 * The one list of request headers a cross-origin client may send, for every route (presence endpoints
 * and message-bus polls alike): the addon's (`Content-Type`, `X-Requested-With`, a bearer token, a CSRF
 * token) and those `message-bus-client` and its adapters add to polls.
 */
export const CORS_ALLOWED_REQUEST_HEADERS: readonly string[] = Object.freeze([
  'Content-Type',
  'Authorization',
  'X-CSRF-Token',
  'X-Requested-With',
  'Dont-Chunk',
  'X-SILENCE-LOGGER',
  'X-Shared-Session-Key',
]);

/** The one set of methods a cross-origin client may use, for every route. */
export const CORS_ALLOWED_METHODS = 'GET, POST, OPTIONS';

/**
 * Builds the CORS-with-credentials step shared by the presence endpoints and the bus router: it grants
 * ONLY `allowedOrigins` (compared normalised, as the CSRF check does) and sets the grant's headers on
 * `res` (the preflight ones on `OPTIONS`), leaving the answer to the caller. With no allowed origin it does
 * nothing: same-origin apps need no CORS, and every other origin gets no grant, so a foreign page can
 * neither read a user's data nor act with their cookies.
 */
export function corsGrant(
  allowedOrigins: readonly string[],
): (req: Request, res: Response) => void {
  const headers = CORS_ALLOWED_REQUEST_HEADERS.join(', ');
  const allowed = new Set(
    allowedOrigins.map(normaliseOrigin).filter((o): o is string => o !== null),
  );
  return (req, res) => {
    if (allowed.size === 0) return;
    res.vary('Origin');
    const origin = req.get('origin');
    const normalised = origin === undefined ? null : normaliseOrigin(origin);
    if (normalised === null || !allowed.has(normalised)) return;
    res.set('Access-Control-Allow-Origin', origin);
    res.set('Access-Control-Allow-Credentials', 'true');
    if (req.method === 'OPTIONS') {
      res.set('Access-Control-Allow-Methods', CORS_ALLOWED_METHODS);
      res.set('Access-Control-Allow-Headers', headers);
      res.set('Access-Control-Max-Age', '600');
    }
  };
}

/**
 * CORS with credentials for the presence endpoints, granted ONLY to `allowedOrigins` (the same list the
 * CSRF check accepts), for apps served from another origin than the presence server (see
 * {@link corsGrant}). Preflights (`OPTIONS`) are answered here with 204.
 */
export function presenceCors(
  allowedOrigins: readonly string[],
): RequestHandler {
  const grant = corsGrant(allowedOrigins);
  return (req: Request, res: Response, next: NextFunction) => {
    grant(req, res);
    if (req.method === 'OPTIONS') {
      res.set('Allow', CORS_ALLOWED_METHODS).status(204).end();
      return;
    }
    next();
  };
}
