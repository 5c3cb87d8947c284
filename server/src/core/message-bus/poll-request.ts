import { hasControlCharacters } from '../channel-name.js';
import { HttpError } from '../errors.js';
import { STATUS_CHANNEL } from './wire.js';

/**
 * Parsing of a poll request body (docs/protocol.md §6): a map of channel → last seen id plus `__seq`, sent
 * form-encoded (`message-bus-client` through jQuery or an XHR adapter) or as JSON. Values may be strings or
 * numbers. Anything that is not one of the documented shapes is a 400 {@link HttpError}, never a guess.
 */

/**
 * The last id a client has seen on a channel, as sent:
 * - `null` — "from now" (an empty value);
 * - `-1` — from now, and send a `/__status` entry with the current last id;
 * - `-N` (N > 1) — replay the last N−1 messages;
 * - `0` — the whole backlog;
 * - `k > 0` — messages with id > k (beyond the channel's last id: treated as `-1`).
 */
export type LastSeenId = number | null;

/** One channel of a poll, in the order the client listed it. */
export interface PollPosition {
  channel: string;
  lastId: LastSeenId;
}

/** A parsed poll request. */
export interface PollRequest {
  /** Distinct channels, in request order. */
  positions: PollPosition[];
  /** The client's request counter (`__seq`); 0 when absent. A newer poll replaces an older held one. */
  seq: number;
}

/** Bounds on what one poll may ask for. */
export interface PollLimits {
  /** Most channels in one poll. Default {@link DEFAULT_MAX_POLL_CHANNELS}. */
  maxChannels?: number;
}

/**
 * 200 channels per poll: a busy page follows a few dozen (presence channels plus the host's own), so this
 * only stops abuse — every channel costs a backlog read and a subscription while the poll is held.
 */
export const DEFAULT_MAX_POLL_CHANNELS = 200;

/**
 * Longest bus channel name accepted in a poll. Presence channels are at most 200 characters plus the
 * `/presence` prefix; host channels get the same headroom. Bounds store keys and log lines.
 */
export const MAX_BUS_CHANNEL_LENGTH = 256;

/** The body field carrying the client's request counter. */
export const SEQ_FIELD = '__seq';

const INTEGER = /^-?\d+$/;

/**
 * `true` when `name` can be a bus channel: starts with `/`, at most {@link MAX_BUS_CHANNEL_LENGTH}
 * characters, no control characters, and not the `/__status` pseudo-channel.
 */
export function isValidBusChannel(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 1 &&
    name.length <= MAX_BUS_CHANNEL_LENGTH &&
    name[0] === '/' &&
    name !== STATUS_CHANNEL &&
    !hasControlCharacters(name)
  );
}

/**
 * Parses the raw text of a poll body. `application/json` bodies are JSON objects; anything else is read as
 * `application/x-www-form-urlencoded` (what jQuery, `URLSearchParams` and `message-bus-client`'s adapters
 * send), except that a body starting with `{` is taken as JSON whatever its content type says, because
 * some fetch wrappers post JSON as text/plain.
 *
 * @example parsePollBody('%2Fpresence%2Fsite%2Fonline=-1&__seq=1', 'application/x-www-form-urlencoded')
 * // → { positions: [{ channel: '/presence/site/online', lastId: -1 }], seq: 1 }
 * @throws {HttpError} 400 `invalid_parameters` for malformed JSON or any invalid field.
 */
export function parsePollBody(
  text: string,
  contentType: string | undefined,
  limits: PollLimits = {},
): PollRequest {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const trimmed = text.trim();
  if (
    type === 'application/json' ||
    type.endsWith('+json') ||
    trimmed.startsWith('{')
  ) {
    if (trimmed === '') return parsePollFields({}, limits);
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw HttpError.invalidParameters('The poll body is not valid JSON.');
    }
    return parsePollFields(parsed, limits);
  }
  const fields: Record<string, string> = Object.create(null) as Record<
    string,
    string
  >;
  // A repeated key keeps its last value, as Rack and body-parser do for plain keys.
  for (const [key, value] of new URLSearchParams(text)) fields[key] = value;
  return parsePollFields(fields, limits);
}

/**
 * Validates an already-decoded poll body (a JSON object, or the fields of a form). Keys starting with `/`
 * are channels; `__seq` is the request counter; any other key is ignored (hosts may add their own fields,
 * such as a CSRF token, to every request). `/__status` is not a channel and is ignored too.
 *
 * @throws {HttpError} 400 `invalid_parameters` naming the offending field.
 */
export function parsePollFields(
  fields: unknown,
  limits: PollLimits = {},
): PollRequest {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw HttpError.invalidParameters(
      'The poll body must be a map of channel names to last seen ids, e.g. {"/presence/site/online": -1}.',
    );
  }
  const maxChannels = limits.maxChannels ?? DEFAULT_MAX_POLL_CHANNELS;
  const positions: PollPosition[] = [];
  const seen = new Set<string>();
  let seq = 0;
  for (const [key, value] of Object.entries(
    fields as Record<string, unknown>,
  )) {
    if (key === SEQ_FIELD) {
      seq = parseSeq(value);
      continue;
    }
    if (key[0] !== '/' || key === STATUS_CHANNEL) continue;
    if (!isValidBusChannel(key)) {
      throw HttpError.invalidParameters(
        `Channel names must start with "/", have at most ${MAX_BUS_CHANNEL_LENGTH} characters and no control characters.`,
      );
    }
    if (seen.has(key)) continue;
    seen.add(key);
    if (positions.length >= maxChannels) {
      throw HttpError.invalidParameters(
        `A poll may follow at most ${maxChannels} channels.`,
      );
    }
    positions.push({ channel: key, lastId: parseLastId(key, value) });
  }
  return { positions, seq };
}

/**
 * One last-seen id: an integer (number or decimal string), or empty/`null` for "from now". `"null"` and
 * `"undefined"` are what `URLSearchParams` makes of a missing id, so they mean "from now" too.
 */
function parseLastId(channel: string, value: unknown): LastSeenId {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return value === 0 ? 0 : value; // folds -0 into 0
  } else if (typeof value === 'string') {
    const text = value.trim();
    if (text === '' || text === 'null' || text === 'undefined') return null;
    if (INTEGER.test(text)) {
      const id = Number(text);
      if (Number.isSafeInteger(id)) return id === 0 ? 0 : id;
    }
  }
  throw HttpError.invalidParameters(
    `The last seen id of ${JSON.stringify(channel)} must be an integer or empty (got ${describe(value)}).`,
  );
}

function parseSeq(value: unknown): number {
  if (value === null || value === undefined || value === '') return 0;
  const seq =
    typeof value === 'string' && INTEGER.test(value.trim())
      ? Number(value.trim())
      : value;
  if (typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0)
    return seq;
  throw HttpError.invalidParameters(
    `__seq must be a non-negative integer (got ${describe(value)}).`,
  );
}

/** A short, log-safe description of a rejected value (never the whole value: it may be huge). */
function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return value === null ? 'null' : 'an object';
  return typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : typeof value;
}
