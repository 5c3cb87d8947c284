import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { normaliseOrigin } from './csrf.js';

/** Headers a cross-origin presence client may send (the addon's, plus a bearer token and a CSRF token). */
const ALLOWED_REQUEST_HEADERS =
  'Content-Type, Authorization, X-CSRF-Token, X-Requested-With';

/**
 * CORS with credentials for the presence endpoints, granted ONLY to `allowedOrigins` (the same list the
 * CSRF check accepts), for apps served from another origin than the presence server. Same-origin apps
 * need none of it, and every other origin gets no grant: it can neither read presence state with the
 * user's cookies nor pass the CSRF check. Preflights (`OPTIONS`) are answered here with 204.
 */
export function presenceCors(
  allowedOrigins: readonly string[],
): RequestHandler {
  const allowed = new Set(
    allowedOrigins.map(normaliseOrigin).filter((o): o is string => o !== null),
  );
  return (req: Request, res: Response, next: NextFunction) => {
    if (allowed.size > 0) {
      res.vary('Origin');
      const origin = req.get('origin');
      const normalised = origin === undefined ? null : normaliseOrigin(origin);
      if (normalised !== null && allowed.has(normalised)) {
        res.set('Access-Control-Allow-Origin', origin);
        res.set('Access-Control-Allow-Credentials', 'true');
        if (req.method === 'OPTIONS') {
          res.set('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
          res.set('Access-Control-Allow-Headers', ALLOWED_REQUEST_HEADERS);
          res.set('Access-Control-Max-Age', '600');
        }
      }
    }
    if (req.method === 'OPTIONS') {
      res.set('Allow', 'GET, POST, OPTIONS').status(204).end();
      return;
    }
    next();
  };
}
