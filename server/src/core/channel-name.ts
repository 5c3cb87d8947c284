/**
 * Channel names (docs/protocol.md §1): `/<prefix>/<rest>`, where `prefix` was registered by the host and `rest` is any
 * non-empty string. Every name that fails these rules behaves exactly like a channel that does not exist,
 * so callers only ever ask "is this a usable name?" and never report *why* one is not.
 */

/**
 * Longest valid channel name, in UTF-16 code units (JavaScript `length`). Keeps store keys, bus channel
 * names and log lines bounded whatever a client sends.
 */
export const MAX_CHANNEL_NAME_LENGTH = 200;

/** What a registered prefix must match: one path segment of ASCII letters, digits, `_` and `-`. */
export const PREFIX_PATTERN = /^[a-zA-Z0-9_-]+$/;

// C0 controls, DEL and C1 controls (Unicode category Cc): they would break log lines and make two names
// that render identically distinct. And lone surrogates (Cs: a string that is not well-formed Unicode):
// Redis clients encode each one as U+FFFD, so two different names would share one key on Redis while the
// memory store kept them apart.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u;

/**
 * `true` when `value` contains a control character (C0, DEL or C1) or a lone surrogate (is not well-formed
 * Unicode); used for names and client ids.
 */
export function hasControlCharacters(value: string): boolean {
  return CONTROL_CHARACTERS.test(value);
}

/** The two halves of a valid channel name. */
export interface ParsedChannelName {
  /** The registered part, e.g. `site` for `/site/online`. */
  prefix: string;
  /** Everything after the second slash, never empty, e.g. `online` or `280/reply`. */
  rest: string;
}

/**
 * `true` when `prefix` may be registered (`^[a-zA-Z0-9_-]+$`).
 *
 * @example isValidPrefix('topic-reply') // true
 * @example isValidPrefix('site/online') // false
 */
export function isValidPrefix(prefix: unknown): prefix is string {
  return typeof prefix === 'string' && PREFIX_PATTERN.test(prefix);
}

/**
 * Splits a channel name into prefix and rest, or returns `null` when the name is not a valid channel name
 * (not a string, longer than {@link MAX_CHANNEL_NAME_LENGTH}, control characters or lone surrogates, bad
 * prefix, empty rest).
 *
 * @example parseChannelName('/topic/280/reply') // { prefix: 'topic', rest: '280/reply' }
 * @example parseChannelName('/site/') // null
 */
export function parseChannelName(name: unknown): ParsedChannelName | null {
  if (
    typeof name !== 'string' ||
    name.length > MAX_CHANNEL_NAME_LENGTH ||
    name[0] !== '/'
  )
    return null;
  if (CONTROL_CHARACTERS.test(name)) return null;
  const slash = name.indexOf('/', 1);
  if (slash === -1) return null;
  const prefix = name.slice(1, slash);
  const rest = name.slice(slash + 1);
  if (!PREFIX_PATTERN.test(prefix) || rest.length === 0) return null;
  return { prefix, rest };
}

/** `true` when `name` is a syntactically valid channel name (whether or not its prefix is registered). */
export function isValidChannelName(name: unknown): name is string {
  return parseChannelName(name) !== null;
}
