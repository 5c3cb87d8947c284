import { isValidChannelName } from './channel-name.js';
import { invalidClientIdError, isValidClientId } from './client-id.js';
import {
  ChannelFull,
  HttpError,
  InvalidAccess,
  toErrorResponse,
} from './errors.js';
import { setOwn, type PresenceCore } from './presence.js';
import type { RateLimitResult, UpdateAdmission } from './store.js';
import type { CurrentUser } from './types.js';

/**
 * The presence endpoints of docs/protocol.md §3–§4 without a transport: they take the already-parsed query or body as a
 * plain value and return the response to send. The Express routes and the in-browser fake server both call
 * these, so validation, status codes and bodies are identical in both.
 *
 * Inputs are accepted in every shape the usual parsers produce for `channels[]=a&channels[]=b`:
 * - Express 5 "simple" query parser / `urlencoded({ extended: false })`: key `channels[]`, a string for
 *   one value, an array for several;
 * - "extended" parser (qs) / `urlencoded({ extended: true })`: key `channels`, an array — or, past qs's
 *   array limit, an object with index keys `{"0": …, "1": …}`;
 * - pretender (route-recognizer): key `channels`, an array; JSON bodies: whatever the client sent.
 * Anything else — objects, nested arrays, numbers — is a 400 `invalid_parameters`, never a throw.
 *
 * Errors that are not about the request (the store is down) are re-thrown for the transport's error
 * handler, which knows how to report them (e.g. 503).
 */

/** Most channels one GET may ask for, and most entries in each list of one update. */
export const MAX_CHANNELS_PER_REQUEST = 50;

/** A fixed-window rate limit (the `rateLimit` option of the server, the fake server and the handlers). */
export interface RateLimitOptions {
  /** Requests allowed per window. Default 20. */
  limit?: number;
  /** Window length in whole milliseconds. Default 10000. */
  windowMs?: number;
}

/** Default rate limit of `POST /presence/update`: 20 requests per user per 10 s, across all processes. */
export const DEFAULT_UPDATE_RATE_LIMIT: Readonly<Required<RateLimitOptions>> =
  Object.freeze({
    limit: 20,
    windowMs: 10_000,
  });

/**
 * `options` with the defaults filled in; throws a `TypeError` naming the field when `limit` or `windowMs`
 * is not a positive integer. The server calls it at startup, so a bad value fails there instead of
 * turning every update into a 500.
 */
export function checkRateLimit(
  options: RateLimitOptions = {},
): Required<RateLimitOptions> {
  if ('max' in options) {
    // The count was called `max` before 0.1.0: refuse it rather than silently apply the default.
    throw new TypeError(
      'ember-presence: rateLimit takes { limit, windowMs }; rename `max` to `limit`',
    );
  }
  const limit = options.limit ?? DEFAULT_UPDATE_RATE_LIMIT.limit;
  const windowMs = options.windowMs ?? DEFAULT_UPDATE_RATE_LIMIT.windowMs;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new TypeError(
      `ember-presence: rateLimit.limit must be a positive integer, got ${String(limit)}`,
    );
  }
  if (!Number.isSafeInteger(windowMs) || windowMs < 1) {
    throw new TypeError(
      `ember-presence: rateLimit.windowMs must be a positive integer number of milliseconds, got ${String(windowMs)}`,
    );
  }
  return { limit, windowMs };
}

/**
 * The key of `POST /presence/update`'s answer that maps a refused (`false`) channel to why, when the reason
 * is one a client may show (docs/protocol.md §4): today only `"full"`.
 */
export const UPDATE_REASONS_KEY = '_reasons';

/** A transport-independent response. */
export interface HandlerResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Options of {@link handleUpdate}. */
export interface UpdateOptions {
  /**
   * Per-user rate limit, counted in the store so every process shares it. `false` disables it (e.g. the
   * in-browser fake server). Default {@link DEFAULT_UPDATE_RATE_LIMIT}.
   */
  rateLimit?: RateLimitOptions | false;
  /**
   * Most channels one user may be present in at once, across their tabs and every process
   * ({@link DEFAULT_MAX_CHANNELS_PER_USER}); presents beyond it answer `false`. `false` disables it.
   */
  maxChannelsPerUser?: number | false;
}

/**
 * 100 channels per user at once: far above what one person's tabs use, and a bound on the state one
 * signed-in user can hold (with `emptyChannelTtlMs`, on what entering and leaving fresh names leaves).
 */
export const DEFAULT_MAX_CHANNELS_PER_USER = 100;

/**
 * How long a channel counts against its user's cap after the last present naming it: two heartbeats
 * (30 s each) and the default 60 s timeout, so a present client always holds its slot.
 */
export const CHANNEL_CLAIM_TTL_MS = 2 * 60 * 1000;

const INDEX_KEY = /^(0|[1-9][0-9]{0,8})$/;

function own(source: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(source, key)
    ? source[key]
    : undefined;
}

function hasOwn(source: Record<string, unknown>, key: string): boolean {
  return (
    Object.prototype.hasOwnProperty.call(source, key) &&
    source[key] !== undefined
  );
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/**
 * The items of one parameter value: a string is a list of one; an array is itself; an object keyed only by
 * indices is what qs makes of an array longer than its `arrayLimit`. `null` for anything else.
 */
function listItems(value: unknown): readonly unknown[] | null {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value as readonly unknown[];
  if (typeof value !== 'object' || value === null) return null;
  const keys = Object.keys(value);
  if (keys.length === 0 || !keys.every((key) => INDEX_KEY.test(key)))
    return null;
  return keys
    .map(Number)
    .sort((a, b) => a - b)
    .map((index) => (value as Record<string, unknown>)[String(index)]);
}

/**
 * Reads list parameter `name` from `name[]` and `name` (both if both are present), deduplicated in order.
 * `undefined` when absent; throws a 400 when present but not strings, or with more than 50 unique names.
 * Stops at the 51st unique name, so a huge list costs no more than a small one.
 *
 * Under the bare `name` only a list is accepted (a JSON array, or what an extended query parser made of
 * `name[]=…`): a single string there is a bare `name=x`, which the contract (and Discourse) refuse.
 */
function readList(
  source: Record<string, unknown>,
  name: string,
): string[] | undefined {
  const bare = own(source, name);
  if (typeof bare === 'string') {
    throw HttpError.invalidParameters(
      `${name} must be a list: send ${name}[]=<channel> once per channel (or a JSON array)`,
    );
  }
  const values = [own(source, `${name}[]`), bare].filter(
    (value) => value !== undefined,
  );
  if (values.length === 0) return undefined;
  const unique = new Set<string>();
  for (const value of values) {
    const items = listItems(value);
    if (!items)
      throw HttpError.invalidParameters(
        `${name}[] must be an array of channel names`,
      );
    for (const item of items) {
      if (typeof item !== 'string') {
        throw HttpError.invalidParameters(
          `${name}[] must be an array of channel names`,
        );
      }
      unique.add(item);
      if (unique.size > MAX_CHANNELS_PER_REQUEST) {
        throw HttpError.invalidParameters(
          `${name}[] may list at most ${MAX_CHANNELS_PER_REQUEST} channels`,
        );
      }
    }
  }
  return [...unique];
}

async function respond(
  work: () => Promise<HandlerResponse>,
): Promise<HandlerResponse> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    const { status, body, headers } = toErrorResponse(err);
    return headers ? { status, body, headers } : { status, body };
  }
}

/**
 * `GET /presence/get` (docs/protocol.md §3). Login is not required (`user` may be `null`).
 * - `channels[]=<name>` (repeated): 200 with `{ "<name>": state | null }`; duplicates removed; missing,
 *   empty, not strings or more than 50 unique names → 400 `invalid_parameters`.
 * - legacy `channel=<name>`: 200 with the bare state, or 404 `not_found` when the channel does not exist
 *   or may not be viewed.
 *
 * @example
 * router.get('/presence/get', async (req, res) => {
 *   const { status, body, headers } = await handleGet(presence, req.query, await currentUser(req));
 *   res.status(status).set(headers ?? {}).json(body);
 * });
 */
export function handleGet(
  core: PresenceCore,
  query: unknown,
  user: CurrentUser | null,
): Promise<HandlerResponse> {
  return respond(async () => {
    const params = asRecord(query);
    const hasList = hasOwn(params, 'channels') || hasOwn(params, 'channels[]');
    if (hasOwn(params, 'channel')) {
      if (hasList)
        throw HttpError.invalidParameters(
          'use either channels[] or channel, not both',
        );
      const name = own(params, 'channel');
      if (typeof name !== 'string')
        throw HttpError.invalidParameters('channel must be one channel name');
      const state = await core.state(name, user);
      if (!state) throw HttpError.notFound();
      return { status: 200, body: state };
    }
    const names = readList(params, 'channels');
    if (!names) throw HttpError.invalidParameters('channels[] is required');
    if (names.length === 0)
      throw HttpError.invalidParameters(
        'channels[] must name at least one channel',
      );
    return { status: 200, body: await core.states(names, user) };
  });
}

/**
 * `POST /presence/update` (docs/protocol.md §4). Needs a user (else 403 `not_logged_in`) and is rate limited per
 * user (429 `rate_limit` with `Retry-After`). Body: `client_id` (non-blank, ≤ 64 chars) and optional
 * `present_channels[]` / `leave_channels[]` (≤ 50 each). All presents are applied, then all leaves; the
 * response maps each present channel to `true`, or `false` when it does not exist or the user may not
 * enter it. A channel refused because it is full (`maxUsers`) is `false` too, and also listed in
 * `"_reasons": {"<name>": "full"}` ({@link UPDATE_REASONS_KEY}; absent when there is none). Leaves never
 * appear in the response and never fail.
 *
 * CSRF protection is the transport's job and must run before this.
 */
export function handleUpdate(
  core: PresenceCore,
  body: unknown,
  user: CurrentUser | null,
  options: UpdateOptions = {},
): Promise<HandlerResponse> {
  return respond(async () => {
    if (!user) throw HttpError.notLoggedIn();
    const rate =
      options.rateLimit === false ? null : checkRateLimit(options.rateLimit);

    let update: ReturnType<typeof readUpdate>;
    try {
      update = readUpdate(body);
    } catch (err) {
      // An invalid update still counts against the limit, and past it answers 429 rather than 400.
      if (rate)
        await admitUpdate(core, user, [], [], rate, {
          ...options,
          maxChannelsPerUser: false,
        });
      throw err;
    }
    const { clientId, presentNames, leaveNames } = update;

    const refused = new Set(
      await admitUpdate(core, user, presentNames, leaveNames, rate, options),
    );
    const presents = await Promise.allSettled(
      presentNames.map((name) =>
        refused.has(name)
          ? Promise.reject(new InvalidAccess())
          : core.present(user, name, clientId),
      ),
    );
    const response: Record<string, boolean | Record<string, string>> = {};
    const reasons: Record<string, string> = {};
    presents.forEach((outcome, index) => {
      const name = presentNames[index] as string;
      if (outcome.status === 'rejected') {
        if (!(outcome.reason instanceof InvalidAccess)) throw outcome.reason;
        if (outcome.reason instanceof ChannelFull)
          setOwn(reasons, name, outcome.reason.reason);
      }
      setOwn(response, name, outcome.status === 'fulfilled');
    });
    // Channel names start with "/", so this key can never be mistaken for one.
    if (Object.keys(reasons).length > 0)
      setOwn(response, UPDATE_REASONS_KEY, reasons);
    // A present refused after its slot was claimed (no such channel, no access, full) gives the slot
    // back, so that retrying a full channel or asking for made-up names never uses up the user's cap.
    const unclaimed = presentNames.filter(
      (name, index) =>
        presents[index]!.status === 'rejected' && !refused.has(name),
    );
    if (unclaimed.length > 0)
      await releaseClaims(core, user, unclaimed, options);

    await Promise.all(
      leaveNames.map((name) => core.leave(user, name, clientId)),
    );
    return { status: 200, body: response };
  });
}

/** The body of an update, checked: a client id and the present and leave lists. Throws a 400. */
function readUpdate(body: unknown): {
  clientId: string;
  presentNames: string[];
  leaveNames: string[];
} {
  const params = asRecord(body);
  const clientId = own(params, 'client_id');
  if (!isValidClientId(clientId)) throw invalidClientIdError();
  return {
    clientId,
    presentNames: readList(params, 'present_channels') ?? [],
    leaveNames: readList(params, 'leave_channels') ?? [],
  };
}

/**
 * The update's rate limit (429 past it), then the present names beyond the user's cap on channels at
 * once (see {@link UpdateOptions}): in one store call when the store can (`admitUpdate`), else a `hit`
 * then a `claimChannels`, with the same outcome.
 */
async function admitUpdate(
  core: PresenceCore,
  user: CurrentUser,
  present: readonly string[],
  leaving: readonly string[],
  rate: Required<RateLimitOptions> | null,
  options: UpdateOptions,
): Promise<string[]> {
  const { store } = core;
  if (store.admitUpdate && rate) {
    const now = Math.floor(core.clock());
    const claims = channelClaims(present, leaving, options, now);
    const result = await store.admitUpdate(user.id, { rate, claims }, now);
    if (result.rate) throwIfLimited(result.rate, rate.limit);
    return result.refused;
  }
  if (rate) await enforceRateLimit(core, user, rate);
  const now = Math.floor(core.clock());
  const claims = channelClaims(present, leaving, options, now);
  if (!claims) return [];
  return store.claimChannels(
    user.id,
    claims.present,
    claims.leaving,
    claims.cap,
    claims.untilMs,
    now,
  );
}

/** Frees the user's cap slots of `names` (no-op without a cap). */
async function releaseClaims(
  core: PresenceCore,
  user: CurrentUser,
  names: readonly string[],
  options: UpdateOptions,
): Promise<void> {
  const now = Math.floor(core.clock());
  const claims = channelClaims([], names, options, now);
  if (!claims) return;
  await core.store.claimChannels(
    user.id,
    [],
    claims.leaving,
    claims.cap,
    claims.untilMs,
    now,
  );
}

/** What an update claims against the user's cap, or `null` when there is no cap or nothing to claim. */
function channelClaims(
  present: readonly string[],
  leaving: readonly string[],
  options: UpdateOptions,
  now: number,
): NonNullable<UpdateAdmission['claims']> | null {
  const cap = options.maxChannelsPerUser ?? DEFAULT_MAX_CHANNELS_PER_USER;
  if (cap === false) return null;
  if (!Number.isSafeInteger(cap) || cap < 1) {
    throw new TypeError(
      `ember-presence: maxChannelsPerUser must be a positive integer or false, got ${String(cap)}`,
    );
  }
  // Only names that can be channels take or free a slot; the others answer false anyway.
  const claims = {
    present: present.filter(isValidChannelName),
    leaving: leaving.filter(isValidChannelName),
    cap,
    untilMs: now + CHANNEL_CLAIM_TTL_MS,
  };
  return claims.present.length === 0 && claims.leaving.length === 0
    ? null
    : claims;
}

async function enforceRateLimit(
  core: PresenceCore,
  user: CurrentUser,
  { limit, windowMs }: Required<RateLimitOptions>,
): Promise<void> {
  const result = await core.store.hit(
    `presence-update:${user.id}`,
    windowMs,
    Math.floor(core.clock()),
    limit,
  );
  throwIfLimited(result, limit);
}

function throwIfLimited(result: RateLimitResult, limit: number): void {
  if (!result.allowed || result.count > limit)
    throw HttpError.rateLimited(result.resetMs / 1000);
}
