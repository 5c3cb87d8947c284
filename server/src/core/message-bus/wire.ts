import type { BusMessage } from '../types.js';

/**
 * The MessageBus wire format (docs/protocol.md §6): what a poll response carries and how a chunked response frames it.
 * Pure functions shared by the Node router and the in-browser fake server.
 */

/** A message as the client receives it: exactly these four fields, never the audience lists. */
export interface WireMessage {
  global_id: number;
  message_id: number;
  channel: string;
  data: unknown;
}

/** The pseudo-channel of status entries (`message-bus-client` moves each listed channel's `last_id`). */
export const STATUS_CHANNEL = '/__status';

/**
 * Bus channels under this prefix carry presence change messages (`/presence<name>` for channel `<name>`);
 * only the store's presence operations may publish there, so their ids stay consecutive with the state.
 */
export const PRESENCE_BUS_PREFIX = '/presence';

/** `true` for `/presence` and every channel under `/presence/`: the presence change namespace. */
export function isPresenceBusChannel(channel: string): boolean {
  return (
    channel === PRESENCE_BUS_PREFIX ||
    channel.startsWith(`${PRESENCE_BUS_PREFIX}/`)
  );
}

/**
 * Ends every chunk of a streamed (chunked) poll response. `message-bus-client` splits the response text
 * on it and parses each piece as a JSON array.
 */
export const CHUNK_SEPARATOR = '\r\n|\r\n';

/** How an occurrence of {@link CHUNK_SEPARATOR} inside a chunk is written; the client turns it back. */
export const ESCAPED_CHUNK_SEPARATOR = '\r\n||\r\n';

/**
 * The client's view of a stored message. The audience (`user_ids`, `group_ids`, `client_ids`) is dropped
 * on purpose: it says who else may read the channel and must never leave the server.
 *
 * @example toWireMessage({ global_id: 9, message_id: 3, channel: '/a', data: 1, user_ids: [4] })
 * // → { global_id: 9, message_id: 3, channel: '/a', data: 1 }
 */
export function toWireMessage(message: BusMessage): WireMessage {
  return {
    global_id: message.global_id,
    message_id: message.message_id,
    channel: message.channel,
    data: message.data,
  };
}

/**
 * Serialised once per message (issue #17, fan-out): every poll that receives one stored message — the
 * store hands the same object to every listener — gets the same {@link WireMessage} object from
 * {@link sharedWireMessage}, whose JSON, and the JSON and chunk of an answer made of exactly the same
 * messages, are computed on first use and then reused by every other poll. The caches hang off the message
 * objects (weakly), so they live exactly as long as some poll still holds the message. Audience filtering
 * happens before: a cache only ever serves a poll the same messages it was already given.
 */
interface WireCache {
  /** The message's own JSON, once asked for. */
  json: string | undefined;
  /** Answers that start with this message, newest last (at most {@link MAX_CACHED_ANSWERS}). */
  answers: CachedAnswer[];
}

interface CachedAnswer {
  /** A copy of the list, compared element by element (identity). */
  messages: readonly WireMessage[];
  json: string;
  /** {@link encodeChunk} of the list, once asked for. */
  chunk: string | undefined;
}

/** Distinct answers cached per first message: polls of one fan-out mostly share one. */
const MAX_CACHED_ANSWERS = 4;

const wireOfStored = new WeakMap<BusMessage, WireMessage>();
const wireCaches = new WeakMap<WireMessage, WireCache>();

/**
 * {@link toWireMessage}, one object per stored message object: what the bus hands to polls, so that the
 * serialisation below is shared. Callers must not mutate it (every poll of the message receives it).
 */
export function sharedWireMessage(message: BusMessage): WireMessage {
  let wire = wireOfStored.get(message);
  if (!wire) {
    wire = toWireMessage(message);
    wireOfStored.set(message, wire);
    wireCaches.set(wire, { json: undefined, answers: [] });
  }
  return wire;
}

/**
 * {@link toWireMessage} with its JSON, computed now and remembered: a backlog read measures each message
 * by its JSON (the per-answer byte cap), and the answer it builds is then written from the same strings
 * ({@link answerJson}), never serialised a second time.
 */
export function measuredWireMessage(message: BusMessage): {
  wire: WireMessage;
  json: string;
} {
  const wire = toWireMessage(message);
  const json = stringify(wire);
  wireCaches.set(wire, { json, answers: [] });
  return { wire, json };
}

/**
 * The length of `text` in UTF-8 bytes, what it takes on the wire (`Buffer.byteLength(text)`, which the
 * core cannot use: it also runs in the browser). A lone surrogate counts 3, as the replacement character
 * it is encoded as.
 *
 * @example utf8Length('a😀é') // 1 + 4 + 2 = 7
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code < 0x80) continue;
    if (code < 0x800) {
      bytes += 1;
    } else if (
      code >= 0xd800 &&
      code <= 0xdbff &&
      index + 1 < text.length &&
      (text.charCodeAt(index + 1) & 0xfc00) === 0xdc00
    ) {
      // A surrogate pair: two UTF-16 units, four bytes.
      bytes += 2;
      index += 1;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

/** `JSON.stringify(message)`, computed once for a {@link sharedWireMessage}. */
function messageJson(message: WireMessage): string {
  const cache = wireCaches.get(message);
  if (!cache) return stringify(message);
  return (cache.json ??= stringify(message));
}

/**
 * `JSON.stringify(messages)`, byte for byte: the text of a poll answer. Made of each message's cached JSON;
 * a list of shared messages only is itself cached, so every poll answered with it writes the same string.
 */
export function answerJson(messages: readonly WireMessage[]): string {
  return cachedAnswer(messages)?.json ?? joinJson(messages);
}

/** The cached answer for a list of shared messages (made now if new), or `null` for any other list. */
function cachedAnswer(messages: readonly WireMessage[]): CachedAnswer | null {
  const first = messages[0];
  const cache = first === undefined ? undefined : wireCaches.get(first);
  if (!cache) return null;
  for (const answer of cache.answers) {
    if (
      answer.messages.length === messages.length &&
      answer.messages.every((message, index) => message === messages[index])
    )
      return answer;
  }
  if (!messages.every((message) => wireCaches.has(message))) return null;
  const answer: CachedAnswer = {
    messages: [...messages],
    json: joinJson(messages),
    chunk: undefined,
  };
  if (cache.answers.push(answer) > MAX_CACHED_ANSWERS) cache.answers.shift();
  return answer;
}

/** What `JSON.stringify` makes of the array, from its elements' JSON (cached where they have one). */
function joinJson(messages: readonly WireMessage[]): string {
  let json = '[';
  for (let index = 0; index < messages.length; index += 1) {
    if (index > 0) json += ',';
    json += messageJson(messages[index]!);
  }
  return `${json}]`;
}

/** `JSON.stringify`, with `null` where it answers `undefined` (as it does inside an array). */
function stringify(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

/**
 * The `/__status` pseudo-message telling the client the id to continue each listed channel from.
 *
 * @example statusMessage({ '/presence/site/online': 17 })
 * // → { global_id: -1, message_id: -1, channel: '/__status', data: { '/presence/site/online': 17 } }
 */
export function statusMessage(
  lastIds: Readonly<Record<string, number>>,
): WireMessage {
  return {
    global_id: -1,
    message_id: -1,
    channel: STATUS_CHANNEL,
    data: { ...lastIds },
  };
}

/**
 * One frame of a chunked poll response: the JSON array, with any separator inside it escaped, followed by
 * the separator. `JSON.stringify` never emits a raw CR/LF, so the escape only matters for pre-serialised
 * payloads, but the framing must hold whatever the payload.
 *
 * @example encodeChunk([]) // '[]\r\n|\r\n'
 */
export function encodeChunk(messages: readonly WireMessage[]): string {
  const cached = cachedAnswer(messages);
  if (cached) return (cached.chunk ??= frame(cached.json));
  return frame(joinJson(messages));
}

function frame(json: string): string {
  return `${escapeChunk(json)}${CHUNK_SEPARATOR}`;
}

/** Escapes every {@link CHUNK_SEPARATOR} in `json` as {@link ESCAPED_CHUNK_SEPARATOR}. */
export function escapeChunk(json: string): string {
  return json.split(CHUNK_SEPARATOR).join(ESCAPED_CHUNK_SEPARATOR);
}

/**
 * Splits streamed response text into the JSON arrays it carries (the inverse of {@link encodeChunk}, as
 * `message-bus-client` does it). Text after the last separator is an incomplete chunk and is returned as
 * `rest`. Used by tests and by anyone consuming the stream outside the browser.
 */
export function decodeChunks(text: string): {
  chunks: WireMessage[][];
  rest: string;
} {
  const chunks: WireMessage[][] = [];
  let position = 0;
  for (;;) {
    const end = text.indexOf(CHUNK_SEPARATOR, position);
    if (end === -1) break;
    const piece = text
      .slice(position, end)
      .split(ESCAPED_CHUNK_SEPARATOR)
      .join(CHUNK_SEPARATOR);
    chunks.push(JSON.parse(piece) as WireMessage[]);
    position = end + CHUNK_SEPARATOR.length;
  }
  return { chunks, rest: text.slice(position) };
}
