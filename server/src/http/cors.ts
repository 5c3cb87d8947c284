import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { normaliseOrigin } from './csrf.js';

/** Headers a cross-origin presence client may send (the addon's, plus a bearer token and a CSRF token). */
const ALLOWED_REQUEST_HEADERS =
  'Content-Type, Authorization, X-CSRF-Token, X-Requested-With';

/** What a cross-origin grant allows, for the preflight answer. */
export interface CorsGrantPolicy {
  /** `Access-Control-Allow-Methods`, e.g. `GET, POST, OPTIONS`. */
  methods: string;
  /** `Access-Control-Allow-Headers`: the request headers a cross-origin client may send. */
  headers: string;
}

/**
 * Builds the CORS-with-credentials step shared by the presence endpoints and the bus router: it grants
 * ONLY `allowedOrigins` (compared normalised, as the CSRF check does) and sets the grant's headers on
 * `res` (the preflight ones on `OPTIONS`), leaving the answer to the caller. With no allowed origin it does
 * nothing: same-origin apps need no CORS, and every other origin gets no grant, so a foreign page can
 * neither read a user's data nor act with their cookies.
 */
export function corsGrant(
  allowedOrigins: readonly string[],
  policy: CorsGrantPolicy,
): (req: Request, res: Response) => void {
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
      res.set('Access-Control-Allow-Methods', policy.methods);
      res.set('Access-Control-Allow-Headers', policy.headers);
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
  const grant = corsGrant(allowedOrigins, {
    methods: 'GET, POST, OPTIONS',
    headers: ALLOWED_REQUEST_HEADERS,
  });
  return (req: Request, res: Response, next: NextFunction) => {
    grant(req, res);
    if (req.method === 'OPTIONS') {
      res.set('Allow', 'GET, POST, OPTIONS').status(204).end();
      return;
    }
    next();
  };
}
