import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import { HttpError } from '../../core/errors.js';
import type { CurrentUser, PresenceUser } from '../../core/types.js';
import { csrfProtection } from '../csrf.js';
import { bodyParams, DEFAULT_BODY_LIMIT_BYTES, rawBody } from '../params.js';
import { readCookie, type CurrentUserHook } from './current-user.js';
import { DEMO_USERS } from './demo-users.js';

/**
 * The demo login: lets a person pick one of a few demo users, for trying presence out in two browser
 * windows. It is OFF unless explicitly enabled (`--demo`, or the `ember serve` mount of this repository);
 * when off, its routes do not exist (404).
 *
 * The chosen user travels in an HttpOnly, SameSite=Lax cookie `presence_demo` = `<id>.<HMAC-SHA256>`,
 * signed with a random per-process secret, so the client cannot claim a user it did not log in as
 * (a restart logs everybody out; pass `secret` to share logins across processes).
 *
 * Routes (relative to where the router is mounted):
 * - `GET  /presence/demo-users` → `{ users: [{id, username, name, avatar_template}], current_user: user|null }`
 * - `POST /presence/demo-login` with `username` (form or JSON) → `{ current_user }` + cookie; CSRF-checked
 * - `POST /presence/demo-logout` → `{ ok: true }` and the cookie cleared; CSRF-checked
 * - `GET  /presence/demo-avatar/:username/:size.svg` → an initial-letter SVG avatar
 */
export interface DemoLoginOptions {
  /** Users that may be picked. Default {@link DEMO_USERS}. */
  users?: readonly CurrentUser[];
  /** HMAC secret for the cookie. Default: 32 random bytes per process. */
  secret?: string | Uint8Array;
  /** Extra origins allowed to POST (see `csrfProtection`). */
  allowedOrigins?: readonly string[];
  /** Add `Secure` to the cookie (when served over HTTPS). Default false. */
  secureCookie?: boolean;
}

/** What {@link createDemoLogin} returns. */
export interface DemoLogin {
  /** The demo routes; mount at the same base as the presence router. */
  router: Router;
  /** The identity hook reading the signed cookie. */
  currentUser: CurrentUserHook;
  /** The demo users (for listing). */
  users: readonly CurrentUser[];
}

/** Name of the demo session cookie. */
export const DEMO_COOKIE = 'presence_demo';

const COOKIE_MAX_AGE_MS = 7 * 24 * 3600 * 1000; // a demo session survives a week of coming back

/**
 * Builds the demo login routes and identity hook.
 *
 * @example
 * const demo = createDemoLogin();
 * app.use(demo.router);
 * createPresenceServer({ currentUser: demo.currentUser });
 */
export function createDemoLogin(options: DemoLoginOptions = {}): DemoLogin {
  const users = options.users ?? DEMO_USERS;
  const byId = new Map(users.map((u) => [u.id, u]));
  const byUsername = new Map(users.map((u) => [u.username.toLowerCase(), u]));
  const secret = options.secret ?? randomBytes(32);
  const sign = (id: number): string =>
    createHmac('sha256', secret).update(`demo-user:${id}`).digest('base64url');

  const currentUser: CurrentUserHook = (req) => {
    const cookie = readCookie(req, DEMO_COOKIE);
    if (!cookie) return null;
    const dot = cookie.indexOf('.');
    if (dot === -1) return null;
    const id = Number(cookie.slice(0, dot));
    const user = Number.isSafeInteger(id) ? byId.get(id) : undefined;
    if (!user) return null;
    const given = Buffer.from(cookie.slice(dot + 1));
    const expected = Buffer.from(sign(id));
    return given.length === expected.length && timingSafeEqual(given, expected)
      ? user
      : null;
  };

  const cookieOptions = {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: options.secureCookie ?? false,
    path: '/',
  };

  const router = express.Router();
  const csrf = csrfProtection(
    options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {},
  );

  router.get('/presence/demo-users', async (req: Request, res: Response) => {
    const current = await currentUser(req);
    res.set('Cache-Control', 'no-store').json({
      users: users.map(publicUser),
      current_user: current ? publicUser(current) : null,
    });
  });

  router.post(
    '/presence/demo-login',
    csrf,
    rawBody(DEFAULT_BODY_LIMIT_BYTES),
    async (req: Request, res: Response) => {
      const { username } = await bodyParams(req);
      if (typeof username !== 'string' || username.trim() === '') {
        throw HttpError.invalidParameters(
          'username must be the username of a demo user',
        );
      }
      const user = byUsername.get(username.trim().toLowerCase());
      if (!user) {
        throw HttpError.invalidParameters(
          `"${username.slice(0, 64)}" is not a demo user; pick one of: ${users.map((u) => u.username).join(', ')}`,
        );
      }
      res
        .cookie(DEMO_COOKIE, `${user.id}.${sign(user.id)}`, {
          ...cookieOptions,
          maxAge: COOKIE_MAX_AGE_MS,
        })
        .set('Cache-Control', 'no-store')
        .json({ current_user: publicUser(user) });
    },
  );

  router.post('/presence/demo-logout', csrf, (_req: Request, res: Response) => {
    res
      .clearCookie(DEMO_COOKIE, cookieOptions)
      .set('Cache-Control', 'no-store')
      .json({ ok: true });
  });

  router.get(
    '/presence/demo-avatar/:username/:file',
    (req: Request, res: Response) => {
      const username = String(req.params['username']);
      const size = clampSize(Number.parseInt(String(req.params['file']), 10));
      res
        .type('image/svg+xml')
        .set('Cache-Control', 'public, max-age=86400')
        .send(letterAvatar(username, size));
    },
  );

  return { router, currentUser, users };
}

function publicUser(user: CurrentUser): PresenceUser {
  return {
    id: user.id,
    username: user.username,
    name: user.name,
    avatar_template: user.avatar_template,
  };
}

function clampSize(size: number): number {
  return Number.isFinite(size) ? Math.min(512, Math.max(16, size)) : 48;
}

/** A round avatar with the user's initial, its colour derived from the username. */
function letterAvatar(username: string, size: number): string {
  let hash = 0;
  for (const char of username) hash = (hash * 31 + char.codePointAt(0)!) >>> 0;
  const hue = hash % 360;
  const letter = escapeXml((username.trim()[0] ?? '?').toUpperCase());
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 100 100">` +
    `<circle cx="50" cy="50" r="50" fill="hsl(${hue},55%,45%)"/>` +
    `<text x="50" y="50" dy=".35em" text-anchor="middle" font-family="sans-serif" font-size="50" fill="#fff">` +
    `${letter}</text></svg>`
  );
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
