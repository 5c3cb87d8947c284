import { readFileSync } from 'node:fs';
import type { Request } from 'express';
import {
  errors as joseErrors,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type JWTPayload,
} from 'jose';
import type { CurrentUser } from '../../core/types.js';
import {
  describeInvalidUser,
  readCookie,
  type CurrentUserHook,
} from './current-user.js';

/**
 * JWT authentication: how a host backend lets its users talk to a separate presence server. The host
 * signs a short-lived token for the logged-in user; the browser sends it as `Authorization: Bearer
 * <token>` or in a cookie (default name `presence_token`).
 *
 * Claims:
 * - `sub` (required): the user id, a positive integer or its decimal string;
 * - `username` (required): non-empty string;
 * - `name` (optional): string or null;
 * - `avatar_template` (optional): string, e.g. `/user_avatar/ann/{size}.png`; default `''`;
 * - `groups` (optional): array of integer group ids; default `[]`;
 * - `exp` (required unless `allowNoExpiry`) and `nbf` are enforced (30 s clock tolerance): a token
 *   without an expiry would identify its holder for ever once leaked.
 *
 * Profile fields are bounded by `USER_FIELD_LIMITS` (username 60, name 100, avatar_template 500
 * characters, 1000 groups): a token beyond them is rejected like a malformed one.
 *
 * A token with a bad signature, a wrong algorithm, expired, or with missing/invalid claims makes the
 * request **anonymous** — it is never an error for reads (public channels stay visible). A write then
 * fails like any anonymous one (403 `not_logged_in`), with `extras.reason` = `token_expired` or
 * `invalid_token` so the client can refresh its token (see {@link tokenRejection}).
 */
export interface JwtAuthOptions {
  /** HS256 shared secret. Use at least 32 random bytes. */
  secret?: string | Uint8Array;
  /** RS256 public key: a PEM string (SPKI, `-----BEGIN PUBLIC KEY-----`). */
  publicKey?: string;
  /** Cookie read when no `Authorization: Bearer` header is sent. Default `presence_token`. */
  cookieName?: string;
  /** Expected `iss`, if the host sets one. */
  issuer?: string;
  /** Expected `aud`, if the host sets one. */
  audience?: string;
  /**
   * Accept tokens without an `exp` claim (default `false`: such a token is rejected as `invalid_token`).
   * Only for backends that cannot set one; rotate the secret to revoke.
   */
  allowNoExpiry?: boolean;
  /** Clock (ms since epoch) for `exp`/`nbf` and the log's rate limit; injectable for tests. */
  clock?: () => number;
  /**
   * Where rejected tokens are reported (a wrong secret or an expired token is otherwise invisible at the
   * server): at most one `warn` per {@link REJECTION_LOG_INTERVAL_MS}, naming the reason, what was wrong
   * and how many rejections the line stands for. Never the token itself. Default: none.
   */
  logger?: { warn(message: string, details?: Record<string, unknown>): void };
  /**
   * Most verified tokens remembered (least recently used forgotten first), so a client's repeated
   * requests skip the signature check until the token expires. Default
   * {@link DEFAULT_VERIFIED_TOKEN_CACHE_SIZE}; `0` verifies every request. At most
   * {@link MAX_CACHED_TOKENS_PER_USER} of them per user, and none longer than
   * {@link MAX_CACHED_TOKEN_LENGTH}.
   */
  verifiedTokenCacheSize?: number;
}

/**
 * 20,000 verified tokens per hook. Only tokens that passed verification are remembered — a rejection is
 * never cached — and each one only while the `exp`/`nbf` checks it passed still hold, so an expired token
 * is refused exactly as without the cache.
 *
 * What a full cache weighs depends on the tokens, which a header may make as long as Node's 16 KiB header
 * limit: 20,000 tokens of ~19 KB with 1000 groups took 28 KB an entry, 540 MB. Hence
 * {@link MAX_CACHED_TOKEN_LENGTH}: the largest cacheable token (2 KiB, ~700 group ids, whose user weighs
 * more than the token) takes 8.3 KB an entry, ≈ 160 MB for a full cache at most; a typical token (~270
 * bytes, a few groups) 1.1 KB, ≈ 21 MB. (Heap growth after GC, Node 20, token and user included.)
 */
export const DEFAULT_VERIFIED_TOKEN_CACHE_SIZE = 20_000;

/**
 * Tokens of at most 2 KiB are remembered: a host's token with a profile and a few dozen groups is a few
 * hundred bytes, while tokens up to the 16 KiB header limit would make a full cache weigh half a
 * gigabyte. A longer valid token still works, verified on every request.
 */
export const MAX_CACHED_TOKEN_LENGTH = 2048;

/**
 * 4 remembered tokens per user (`sub`): a token being replaced while the old one is still in use in other
 * tabs, with room to spare. Without it one user holding many distinct valid tokens (one per login or
 * refresh) could fill the whole cache and push everyone else's out, to be verified on every request; a
 * user's fifth token instead replaces that user's least recently used one.
 */
export const MAX_CACHED_TOKENS_PER_USER = 4;

/** Rejected tokens are logged at most once per 10 s, so a flood of bad tokens cannot flood the log. */
export const REJECTION_LOG_INTERVAL_MS = 10_000;

/** Why a presented token was rejected, per request (read by the update route for its error). */
const rejections = new WeakMap<Request, TokenRejection>();

/** `token_expired` for an expired token, `invalid_token` for everything else. */
export type TokenRejection = 'token_expired' | 'invalid_token';

/** Why the token presented with `req` was rejected, or `undefined` (none presented, or it was accepted). */
export function tokenRejection(req: Request): TokenRejection | undefined {
  return rejections.get(req);
}

/** Default cookie carrying the token. */
export const DEFAULT_JWT_COOKIE = 'presence_token';

const CLOCK_TOLERANCE_SECONDS = 30; // servers' clocks drift; 30 s keeps a fresh token valid everywhere

/**
 * Builds a {@link CurrentUserHook} that verifies JWTs (HS256 with `secret`, RS256 with `publicKey`; both
 * may be given, the token's `alg` picks the key and no other algorithm is ever accepted).
 *
 * @example
 * const currentUser = await jwtCurrentUser({ secret: process.env.PRESENCE_JWT_SECRET });
 * @throws Error when neither key is given or the public key is not a valid PEM.
 */
export async function jwtCurrentUser(
  options: JwtAuthOptions,
): Promise<CurrentUserHook> {
  const keys = new Map<string, Uint8Array | CryptoKey>();
  if (options.secret !== undefined) {
    const secret =
      typeof options.secret === 'string'
        ? new TextEncoder().encode(options.secret)
        : options.secret;
    if (secret.length === 0)
      throw new Error('jwt: the HS256 secret must not be empty');
    keys.set('HS256', secret);
  }
  if (options.publicKey !== undefined) {
    try {
      keys.set('RS256', await importSPKI(options.publicKey, 'RS256'));
    } catch (err) {
      throw new Error(
        `jwt: the RS256 public key is not a valid SPKI PEM ("-----BEGIN PUBLIC KEY-----"): ${(err as Error).message}`,
      );
    }
  }
  if (keys.size === 0)
    throw new Error('jwt: give a `secret` (HS256) or a `publicKey` (RS256)');
  const algorithms = [...keys.keys()];
  const cookieName = options.cookieName ?? DEFAULT_JWT_COOKIE;
  const clock = options.clock ?? Date.now;
  const logRejection = rejectionLog(options.logger, clock);
  const verified = new VerifiedTokens(
    options.verifiedTokenCacheSize ?? DEFAULT_VERIFIED_TOKEN_CACHE_SIZE,
  );

  return async (req) => {
    const token = bearerToken(req) ?? readCookie(req, cookieName);
    if (!token) return null;
    const known = verified.get(token, clock());
    if (known) return known;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        (header) => keyFor(keys, header.alg),
        {
          algorithms,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          ...(options.allowNoExpiry ? {} : { requiredClaims: ['exp'] }),
          currentDate: new Date(clock()),
          ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
          ...(options.audience !== undefined
            ? { audience: options.audience }
            : {}),
        },
      ));
    } catch (err) {
      const reason =
        err instanceof joseErrors.JWTExpired
          ? 'token_expired'
          : 'invalid_token';
      rejections.set(req, reason);
      logRejection(reason, joseDetail(err));
      return null;
    }
    const user = userFromClaims(payload);
    if (!user) {
      rejections.set(req, 'invalid_token');
      logRejection(
        'invalid_token',
        `the claims are not a presence user: ${claimsProblem(payload)}`,
      );
      return null;
    }
    return verified.remember(token, user, payload);
  };
}

interface VerifiedToken {
  user: CurrentUser;
  exp: number | undefined;
  nbf: number | undefined;
}

/**
 * Tokens that passed `jwtVerify`, by the token string, with the time claims it checked: a remembered token
 * is served only while jose's own `exp` and `nbf` tests (with the same clock tolerance) would still pass.
 * The keys, issuer and audience of a hook never change, so the signature and those claims stay checked.
 * Bounded, least recently used forgotten first: in all, per user, and in the length of a token.
 */
class VerifiedTokens {
  readonly #max: number;
  readonly #entries = new Map<string, VerifiedToken>();
  /** Each user's remembered tokens, least recently used first. */
  readonly #byUser = new Map<number, Set<string>>();

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 0)
      throw new TypeError(
        `jwt: verifiedTokenCacheSize must be a whole number >= 0, got ${String(max)}`,
      );
    this.#max = max;
  }

  get(token: string, nowMs: number): CurrentUser | undefined {
    const entry = this.#entries.get(token);
    if (!entry) return undefined;
    // jose's tests, on its own whole-second clock.
    const now = Math.floor(nowMs / 1000);
    this.#forget(token, entry);
    if (
      (entry.exp !== undefined && entry.exp <= now - CLOCK_TOLERANCE_SECONDS) ||
      (entry.nbf !== undefined && entry.nbf > now + CLOCK_TOLERANCE_SECONDS)
    )
      return undefined; // verified again, and refused with its reason and log line
    this.#add(token, entry); // re-inserted as the most recently used
    return entry.user;
  }

  /** Remembers a verified token's user (frozen: every request of the token shares it). */
  remember(token: string, user: CurrentUser, claims: JWTPayload): CurrentUser {
    const frozen = Object.freeze({
      ...user,
      groupIds: Object.freeze([...user.groupIds]),
    });
    if (this.#max === 0 || token.length > MAX_CACHED_TOKEN_LENGTH)
      return frozen;
    const known = this.#entries.get(token);
    if (known) this.#forget(token, known);
    this.#add(token, { user: frozen, exp: claims.exp, nbf: claims.nbf });
    const mine = this.#byUser.get(frozen.id)!;
    if (mine.size > MAX_CACHED_TOKENS_PER_USER) {
      const oldest = mine.values().next().value!;
      this.#forget(oldest, this.#entries.get(oldest)!);
    }
    if (this.#entries.size > this.#max) {
      const [oldest, entry] = this.#entries.entries().next().value!;
      this.#forget(oldest, entry);
    }
    return frozen;
  }

  /** Remembers `token` as the most recently used, in all and for its user. */
  #add(token: string, entry: VerifiedToken): void {
    this.#entries.set(token, entry);
    const mine = this.#byUser.get(entry.user.id);
    if (mine) mine.add(token);
    else this.#byUser.set(entry.user.id, new Set([token]));
  }

  #forget(token: string, entry: VerifiedToken): void {
    this.#entries.delete(token);
    const mine = this.#byUser.get(entry.user.id);
    mine?.delete(token);
    if (mine?.size === 0) this.#byUser.delete(entry.user.id);
  }
}

/** Why `userFromClaims` refused these claims, in the claims' own names (`sub`, `groups`). */
function claimsProblem(claims: JWTPayload): string {
  return (describeInvalidUser(candidateFromClaims(claims)) ?? 'invalid')
    .replace('`id`', '`sub`')
    .replace('`groupIds`', '`groups`');
}

/** What jose says was wrong, without anything of the token itself. */
function joseDetail(err: unknown): string {
  if (err instanceof joseErrors.JOSEError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Rate-limited reporting of rejected tokens: the first rejection of a window is logged at once; the ones
 * that follow within {@link REJECTION_LOG_INTERVAL_MS} are counted into the next line.
 */
function rejectionLog(
  logger: JwtAuthOptions['logger'],
  clock: () => number,
): (reason: TokenRejection, detail: string) => void {
  if (!logger) return () => undefined;
  let windowStart = -Infinity;
  let suppressed = 0;
  return (reason, detail) => {
    const now = clock();
    if (now - windowStart < REJECTION_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    windowStart = now;
    logger.warn('rejected a presence token; the request is anonymous', {
      reason,
      detail,
      ...(suppressed > 0 ? { alsoRejectedSinceLastLine: suppressed } : {}),
    });
    suppressed = 0;
  };
}

/** Reads a PEM public key file for {@link JwtAuthOptions.publicKey}, with an error naming the file. */
export function readPublicKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `jwt: cannot read the public key file ${path}: ${(err as Error).message}`,
    );
  }
}

function keyFor(
  keys: Map<string, Uint8Array | CryptoKey>,
  alg: string | undefined,
): Uint8Array | CryptoKey {
  const key = alg === undefined ? undefined : keys.get(alg);
  // `algorithms` already rejects other algorithms; this keeps a key from ever serving the wrong one.
  if (!key)
    throw new joseErrors.JOSEAlgNotAllowed(
      `"alg" (Algorithm) Header Parameter value not allowed`,
    );
  return key;
}

function bearerToken(req: Request): string | undefined {
  const header = req.get('authorization');
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

/** The user described by verified claims, or `null` when a required claim is missing or malformed. */
export function userFromClaims(claims: JWTPayload): CurrentUser | null {
  const candidate = candidateFromClaims(claims);
  return describeInvalidUser(candidate) === null
    ? (candidate as unknown as CurrentUser)
    : null;
}

/** The claims in `CurrentUser`'s shape (`sub` → `id`, `groups` → `groupIds`), not yet checked. */
function candidateFromClaims(claims: JWTPayload): Record<string, unknown> {
  const {
    sub,
    username,
    name,
    avatar_template: avatarTemplate,
    groups,
  } = claims as Record<string, unknown>;
  return {
    id:
      typeof sub === 'string' && /^[1-9]\d{0,15}$/.test(sub)
        ? Number(sub)
        : sub,
    username,
    name: name ?? null,
    avatar_template: avatarTemplate ?? '',
    groupIds: groups ?? [],
  };
}
