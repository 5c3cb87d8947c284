import express, { type Request, type Response, type Router } from 'express';
import { HttpError } from '../core/errors.js';
import {
  checkRateLimit,
  handleGet,
  handleUpdate,
  type HandlerResponse,
  type RateLimitOptions,
} from '../core/http-handlers.js';
import type { PresenceCore } from '../core/presence.js';
import type { CurrentUser } from '../core/types.js';
import {
  assertCurrentUser,
  type CurrentUserHook,
} from './auth/current-user.js';
import { tokenRejection } from './auth/jwt.js';
import { presenceCors } from './cors.js';
import { csrfProtection } from './csrf.js';
import {
  bodyParams,
  DEFAULT_BODY_LIMIT_BYTES,
  queryParams,
  rawBody,
} from './params.js';

/** Options of {@link presenceRouter}. */
export interface PresenceRouterOptions {
  /** The presence core the endpoints run on. */
  core: PresenceCore;
  /** Who is making the request (`null` = anonymous). */
  currentUser: CurrentUserHook;
  /** Origins besides the server's own that may POST updates (see `csrfProtection`). */
  allowedOrigins?: readonly string[];
  /**
   * Per-user limit on `POST /presence/update`, shared by every process through the store. Default 20
   * requests per 10 s; `false` disables it.
   */
  rateLimit?: RateLimitOptions | false;
  /** Most channels one user may be present in at once (presents beyond answer `false`). Default 100; `false` disables. */
  maxChannelsPerUser?: number | false;
  /** Largest accepted update body in bytes. Default 100 KiB. */
  bodyLimitBytes?: number;
  /** Called with every update the handler answered (the metrics count its channels); absent → nothing. */
  onUpdateAnswer?: (response: HandlerResponse) => void;
}

export type { RateLimitOptions };

/**
 * The presence endpoints of docs/protocol.md §3–§4 as an Express 5 router; validation, access rules and rate limiting
 * live in the core handlers, this layer only adapts HTTP:
 *
 * - `GET /presence/get?channels[]=…` → `{ name: state | null }`; `?channel=…` → bare state or 404.
 * - `POST /presence/update` (form, multipart or JSON body) → `{ name: true | false }`; 403 without a user,
 *   403 `bad_csrf` from a foreign origin, 429 past the rate limit.
 * - CORS (with credentials) only for `allowedOrigins`; `OPTIONS` preflights answered with 204.
 *
 * It parses queries and bodies itself, so it behaves the same in apps using the "simple" or "extended"
 * query parser, with or without their own body parsers. It never sets cookies. Errors are passed to
 * `next()`: mount `errorMiddleware` after it (createPresenceServer's router does).
 *
 * @example
 * app.use(presenceRouter({ core, currentUser }));
 * app.use(errorMiddleware(logger));
 */
export function presenceRouter(options: PresenceRouterOptions): Router {
  const { core, currentUser } = options;
  // Checked here so a bad value fails at startup instead of turning every update into a 500.
  const rateLimit =
    options.rateLimit === false ? false : checkRateLimit(options.rateLimit);
  const router = express.Router();
  const csrf = csrfProtection(
    options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {},
  );

  const cors = presenceCors(options.allowedOrigins ?? []);
  router.use(['/presence/get', '/presence/update'], cors);

  router.get('/presence/get', async (req: Request, res: Response) => {
    const user = await resolveUser(currentUser, req);
    send(res, await handleGet(core, queryParams(req), user));
  });

  router.post(
    '/presence/update',
    csrf,
    rawBody(options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES),
    async (req: Request, res: Response) => {
      const user = await resolveUser(currentUser, req);
      if (!user) {
        // Same 403 as the core's, plus why a presented token did not count, so a client can refresh it.
        const reason = tokenRejection(req);
        if (reason) {
          throw new HttpError(
            403,
            'not_logged_in',
            'You need to be logged in to do that.',
            { reason },
          );
        }
      }
      const params = user ? await bodyParams(req) : {};
      const answer = await handleUpdate(core, params, user, {
        rateLimit,
        ...(options.maxChannelsPerUser !== undefined
          ? { maxChannelsPerUser: options.maxChannelsPerUser }
          : {}),
      });
      options.onUpdateAnswer?.(answer);
      send(res, answer);
    },
  );

  return router;
}

/** Runs the host's identity hook and checks what it returned (a hook bug is a 500 with a clear log). */
export async function resolveUser(
  hook: CurrentUserHook,
  req: Request,
): Promise<CurrentUser | null> {
  return assertCurrentUser(await hook(req));
}

function send(res: Response, result: HandlerResponse): void {
  const body = JSON.stringify(result.body);
  // Presence is per-user and changes every second: no cache may keep or share it. Written by hand rather
  // than with `res.json`: Express would hash every body for an ETag that `no-store` makes useless (on a
  // 10,000-user state, 1.2 MB, a SHA-1 and a second copy of the body per GET).
  res.status(result.status);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  if (result.headers) res.set(result.headers);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
