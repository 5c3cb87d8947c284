import express, { type Request, type RequestHandler } from 'express';
import { HttpError } from '../core/errors.js';

/**
 * Request parameters, parsed by the presence router itself. The router is mounted in apps whose query
 * parser (Express 5 "simple" or "extended") and body parsers differ, so it never relies on `req.query`
 * or on a body parser configured by the host: the same input always gives the same shape.
 *
 * Shape: `name=a` → `{ name: 'a' }`; `name[]=a&name[]=b` (jQuery, `URLSearchParams`, `FormData`) and
 * `name[0]=a` → `{ name: ['a', 'b'] }`; a repeated plain key becomes an array too. JSON bodies keep
 * their own shape.
 */
export type Params = Record<string, unknown>;

/** Largest accepted request body. 2 lists × 50 names × 200 characters, percent-encoded, fit with room. */
export const DEFAULT_BODY_LIMIT_BYTES = 100 * 1024;

// `name[]` or `name[12]`: the array notations that jQuery, qs and FormData users send.
const ARRAY_KEY = /^(.*)\[(\d*)\]$/;

/**
 * Folds `[key, value]` pairs into {@link Params}. Bracketed keys always give arrays; repeated plain keys
 * give arrays; everything else is a string.
 */
export function foldEntries(entries: Iterable<[string, string]>): Params {
  const out: Record<string, string | string[]> = Object.create(null) as Record<
    string,
    string | string[]
  >;
  for (const [rawKey, value] of entries) {
    const match = ARRAY_KEY.exec(rawKey);
    const key = match ? match[1]! : rawKey;
    const existing = out[key];
    if (existing === undefined) out[key] = match ? [value] : value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[key] = [existing, value];
  }
  return { ...out };
}

/**
 * The query string of the request, read from the raw URL: independent of the host's query parser setting
 * (`req.query` is "simple" or "extended" depending on the app the router is mounted in).
 */
export function rawQuery(req: Request): URLSearchParams {
  const url = req.originalUrl || req.url;
  const q = url.indexOf('?');
  return new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
}

/** The query string of the request as {@link Params}, read from the raw URL (never `req.query`). */
export function queryParams(req: Request): Params {
  return foldEntries(rawQuery(req));
}

/**
 * The request body as {@link Params}. Understands `application/x-www-form-urlencoded` (jQuery,
 * `URLSearchParams`), `multipart/form-data` (`FormData`, e.g. a `sendBeacon` on unload),
 * `application/json`, and `text/plain` (a `sendBeacon` with a string body: JSON when it looks like JSON,
 * otherwise form-encoded). `rawBody` is what `express.raw()` left in `req.body`; when a host's own
 * parser consumed the stream first, its already-parsed object is used instead.
 *
 * @throws HttpError 400 for malformed JSON/forms, 415 for any other content type.
 */
export async function bodyParams(req: Request): Promise<Params> {
  const body: unknown = req.body;
  if (body === undefined || body === null) return {};
  if (!Buffer.isBuffer(body) && typeof body !== 'string') {
    // A host parser got there first: accept its object, but fold `name[]` keys left by a "simple"
    // (non-extended) urlencoded parser so both host setups give the same shape.
    if (typeof body !== 'object' || Array.isArray(body))
      throw badBody('The request body must be an object.');
    return normaliseParsedObject(body as Record<string, unknown>);
  }
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : body;
  const type = (req.get('content-type') ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  if (text.length === 0 && type !== 'multipart/form-data') return {};
  if (type === 'application/json' || type.endsWith('+json'))
    return parseJsonObject(text);
  if (type === 'application/x-www-form-urlencoded' || type === '')
    return foldEntries(new URLSearchParams(text));
  if (type === 'text/plain') {
    return text.trimStart().startsWith('{')
      ? parseJsonObject(text)
      : foldEntries(new URLSearchParams(text));
  }
  if (type === 'multipart/form-data') return parseMultipart(req, body);
  throw new HttpError(
    415,
    'unsupported_media_type',
    'Send the body as application/x-www-form-urlencoded, multipart/form-data or application/json.',
  );
}

function parseJsonObject(text: string): Params {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badBody('The request body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badBody('The JSON request body must be an object.');
  }
  return parsed as Params;
}

async function parseMultipart(
  req: Request,
  body: Buffer | string,
): Promise<Params> {
  // undici's multipart parser (behind the fetch API's Response#formData) spares a dependency.
  const contentType = req.get('content-type') ?? '';
  let form: FormData;
  try {
    form = await new Response(body, {
      headers: { 'content-type': contentType },
    }).formData();
  } catch {
    throw badBody('The multipart/form-data request body is malformed.');
  }
  const entries: [string, string][] = [];
  for (const [key, value] of form.entries()) {
    if (typeof value !== 'string')
      throw badBody(`The form field "${key}" must be text, not a file.`);
    entries.push([key, value]);
  }
  return foldEntries(entries);
}

function normaliseParsedObject(body: Record<string, unknown>): Params {
  const out: Params = {};
  for (const [rawKey, value] of Object.entries(body)) {
    const match = ARRAY_KEY.exec(rawKey);
    if (!match) {
      out[rawKey] = value;
      continue;
    }
    const key = match[1]!;
    const values = Array.isArray(value) ? (value as unknown[]) : [value];
    const existing: unknown = out[key];
    const before: unknown[] =
      existing === undefined
        ? []
        : Array.isArray(existing)
          ? existing
          : [existing];
    out[key] = [...before, ...values];
  }
  return out;
}

function badBody(message: string): HttpError {
  return new HttpError(400, 'invalid_parameters', message);
}

/**
 * Reads the raw request body (any content type, at most `limit` bytes) into `req.body` as a Buffer for
 * {@link bodyParams}. Skips requests whose body a host parser already consumed. Too large → 413.
 */
export function rawBody(
  limit: number = DEFAULT_BODY_LIMIT_BYTES,
): RequestHandler {
  return express.raw({ type: () => true, limit });
}
