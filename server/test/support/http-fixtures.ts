import express from 'express';
import type { Request } from 'express';
import {
  createApp,
  createPresenceServer,
  type CreateAppOptions,
  type PresenceServerOptions,
} from '../../src/index.js';
import { silentLogger } from '../../src/http/logger.js';
import type { CurrentUser } from '../../src/core/types.js';

/**
 * Fixtures shared by the HTTP tests: four kinds of requester, one channel per kind of config, and apps
 * built the way hosts build them. Tests authenticate with the `X-Test-User: <id>` header through a test
 * identity hook (the shipped strategies are tested on their own).
 */

/** In `allowedUserIds` of the user-list channel. */
export const allowedUser: CurrentUser = {
  id: 1,
  username: 'ann',
  name: 'Ann',
  avatar_template: '/a/ann/{size}.png',
  groupIds: [],
};
/** Member of group 10, the group-list channel's group. */
export const groupMember: CurrentUser = {
  id: 2,
  username: 'bob',
  name: 'Bob',
  avatar_template: '/a/bob/{size}.png',
  groupIds: [10],
};
/** Logged in, but on no list. */
export const outsider: CurrentUser = {
  id: 3,
  username: 'cyd',
  name: null,
  avatar_template: '/a/cyd/{size}.png',
  groupIds: [20],
};

export const USERS: readonly CurrentUser[] = [
  allowedUser,
  groupMember,
  outsider,
];

/** One channel per kind of config. */
export const CHANNELS = {
  public: '/pub/room',
  userList: '/users/room',
  groupList: '/groups/room',
  countOnly: '/count/room',
  nobody: '/nobody/room',
  nonexistent: '/missing/room',
  unregistered: '/nope/room',
} as const;

/** The test identity hook: `X-Test-User: <id>` picks one of {@link USERS}; anything else is anonymous. */
export function headerUser(req: Request): CurrentUser | null {
  const id = Number(req.get('x-test-user'));
  return USERS.find((u) => u.id === id) ?? null;
}

/** A clock the test moves by hand. */
export function fakeClock(start = Date.UTC(2026, 0, 1)): {
  now: () => number;
  advance(ms: number): void;
} {
  let now = start;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

/** Registers the matrix channels (see {@link CHANNELS}). */
export function registerMatrix(presence: {
  registerPrefix: ReturnType<typeof createPresenceServer>['registerPrefix'];
}): void {
  presence.registerPrefix('pub', () => ({ public: true }));
  presence.registerPrefix('users', () => ({
    allowedUserIds: [allowedUser.id],
  }));
  presence.registerPrefix('groups', () => ({ allowedGroupIds: [10] }));
  presence.registerPrefix('count', () => ({ public: true, countOnly: true }));
  presence.registerPrefix('nobody', () => ({}));
  presence.registerPrefix('missing', () => null);
}

/** Quiet, deterministic defaults: no logs, no sweeper timer, the test identity hook. */
export function testOptions(
  overrides: PresenceServerOptions = {},
): PresenceServerOptions {
  return {
    logger: silentLogger,
    sweepIntervalMs: 0,
    currentUser: headerUser,
    ...overrides,
  };
}

/** The standalone app with the matrix channels registered. */
export function matrixApp(
  overrides: CreateAppOptions = {},
): ReturnType<typeof createApp> {
  const app = createApp({ ...testOptions(), ...overrides });
  registerMatrix(app.presence);
  return app;
}

/**
 * The presence router mounted in a host app of its own, with the host's query parser and body parsers,
 * as a host would mount it.
 */
export function hostApp(
  queryParser: 'simple' | 'extended',
  overrides: PresenceServerOptions = {},
  withHostBodyParsers = false,
): { app: express.Express; presence: ReturnType<typeof createPresenceServer> } {
  const presence = createPresenceServer(testOptions(overrides));
  registerMatrix(presence);
  const app = express();
  app.set('query parser', queryParser);
  if (withHostBodyParsers) {
    app.use(express.json());
    app.use(express.urlencoded({ extended: queryParser === 'extended' }));
  }
  app.use(presence.router);
  return { app, presence };
}

/** `Origin` of supertest requests to an app it listens for (`127.0.0.1:<port>`), for CSRF-clean POSTs. */
export const SAME_SITE_HEADERS = { 'Sec-Fetch-Site': 'same-origin' } as const;

/** The JSON error body of a response (supertest types bodies as `any`). */
export function errorOf(res: { body: unknown }): {
  errors: string[];
  error_type: string;
  extras?: Record<string, unknown>;
} {
  return res.body as {
    errors: string[];
    error_type: string;
    extras?: Record<string, unknown>;
  };
}

/** A presence state as the GET returns it. */
export interface StateBody {
  users?: {
    id: number;
    username: string;
    name: string | null;
    avatar_template: string;
  }[];
  count: number;
  last_message_id: number | null;
}

/** The response body, typed by the caller. */
export function bodyOf<T>(res: { body: unknown }): T {
  return res.body as T;
}

/** The four public fields of a user, as state and messages carry them. */
export function publicFields(user: CurrentUser): {
  id: number;
  username: string;
  name: string | null;
  avatar_template: string;
} {
  return {
    id: user.id,
    username: user.username,
    name: user.name,
    avatar_template: user.avatar_template,
  };
}

/**
 * Yields to the event loop (one `setImmediate` turn at a time, at most `maxTurns`) until the server's bus
 * router holds a long poll, so a test can act on a held poll without waiting for any timeout. Resolves
 * whether one is held; callers assert on what they need.
 */
export async function untilPollHeld(
  presence: { stats(): { heldPolls: number } },
  maxTurns = 1000,
): Promise<boolean> {
  for (let i = 0; i < maxTurns && presence.stats().heldPolls === 0; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  return presence.stats().heldPolls > 0;
}
