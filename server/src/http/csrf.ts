import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HttpError } from '../core/errors.js';

/**
 * CSRF defence for the state-changing presence endpoints (`POST /presence/update`, the demo login).
 *
 * A cross-site page can make a browser send a POST with the user's cookies (a form, `fetch` with
 * `mode: 'no-cors'`, `sendBeacon`), but it cannot forge where the request came from: browsers attach
 * `Origin` to every cross-origin POST (beacons included) and `Sec-Fetch-Site` to every request. So a
 * POST is accepted when:
 *
 * 1. `Sec-Fetch-Site` is `same-origin` or `none` (typed/bookmarked — never a page-initiated request), or
 * 2. its `Origin` (or, when a browser omitted `Origin`, its `Referer`) is the server's own origin or one
 *    of `allowedOrigins`, or
 * 3. it carries neither `Origin`, `Referer` nor `Sec-Fetch-Site` AND no cookies: not a browser request
 *    riding on ambient credentials (a backend, curl, or a client sending `Authorization: Bearer`, which
 *    a cross-site page cannot make a browser attach).
 *
 * Everything else is a 403 `bad_csrf`. The same-origin `navigator.sendBeacon` that leaves channels on
 * unload passes rule 1/2 without any token, which a beacon could not carry in a header anyway.
 *
 * "Own origin" compares host and port (`req.host`, which honours `trust proxy` and so
 * `X-Forwarded-Host` behind a trusted proxy such as `ember serve --proxy`); the scheme is not compared
 * because TLS is often terminated by a proxy.
 */
export interface CsrfOptions {
  /**
   * Origins (scheme://host[:port]) that may POST besides the server's own, e.g. the host app's origin
   * when the presence server runs on another domain. `'*'` disables the check (not recommended).
   */
  allowedOrigins?: readonly string[];
}

/** Methods that never change state and are therefore not checked. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Express middleware enforcing {@link CsrfOptions}. Mount it in front of state-changing routes only.
 *
 * @example router.post('/presence/update', csrfProtection({ allowedOrigins: ['https://app.example'] }), handler)
 */
export function csrfProtection(options: CsrfOptions = {}): RequestHandler {
  const allowed = new Set(
    (options.allowedOrigins ?? [])
      .map(normaliseOrigin)
      .filter((o): o is string => !!o),
  );
  const allowAll = (options.allowedOrigins ?? []).includes('*');
  return (req: Request, _res: Response, next: NextFunction) => {
    if (
      allowAll ||
      SAFE_METHODS.has(req.method) ||
      isTrustedRequest(req, allowed)
    ) {
      next();
      return;
    }
    next(
      new HttpError(
        403,
        'bad_csrf',
        'Cross-site request rejected: its origin is not allowed to use this endpoint.',
      ),
    );
  };
}

/** The decision of {@link csrfProtection}, exported for tests and custom routes. */
export function isTrustedRequest(
  req: Request,
  allowedOrigins: ReadonlySet<string>,
): boolean {
  const fetchSite = req.get('sec-fetch-site')?.toLowerCase();
  if (fetchSite === 'same-origin' || fetchSite === 'none') return true;

  const origin = req.get('origin');
  const referer = origin === undefined ? req.get('referer') : undefined;
  const claimed = origin ?? referer;
  if (claimed !== undefined) {
    // `Origin: null` (sandboxed iframes, file: pages, some redirects) never matches anything.
    const normalised = normaliseOrigin(claimed);
    if (!normalised) return false;
    if (allowedOrigins.has(normalised)) return true;
    return sameHost(normalised, req);
  }

  // A browser sends at least one of these on every POST it makes for a page; none at all means a
  // non-browser client, which is only safe when no ambient credential (a cookie) is attached.
  if (fetchSite !== undefined) return false;
  return req.get('cookie') === undefined;
}

/** `scheme://host[:port]` in lower case without a default port, or `null` for anything unparsable. */
export function normaliseOrigin(value: string): string | null {
  if (value === 'null' || value === '') return null;
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return url.origin.toLowerCase();
  } catch {
    return null;
  }
}

function sameHost(origin: string, req: Request): boolean {
  const host = req.host;
  if (!host) return false;
  try {
    const originHost = new URL(origin).host;
    // `new URL` drops default ports, so compare against the request host parsed the same way.
    const requestHost = new URL(`${new URL(origin).protocol}//${host}`).host;
    return originHost === requestHost;
  } catch {
    return false;
  }
}
