import { isRecord } from './apply-snapshot';
import { PresenceRequestError } from './errors';

/**
 * How a presence request ended, as far as the retry logic cares: the body of a 2xx JSON answer, a 429
 * with the wait the server asked for, a failure that retrying can fix (network, 5xx, 408), or one that it
 * cannot (other 4xx, e.g. 403 `not_logged_in`).
 */
export type RequestOutcome =
  | { readonly kind: 'ok'; readonly body: Record<string, unknown> }
  | { readonly kind: 'rate-limited'; readonly waitMs: number | undefined }
  | { readonly kind: 'retry'; readonly error: PresenceRequestError }
  | { readonly kind: 'fatal'; readonly error: PresenceRequestError };

/**
 * Runs one `fetch` and classifies the answer. `fetch` is looked up on every call, not captured once, so
 * pretender (which replaces `window.fetch`) can be installed after the service was created.
 */
export async function presenceRequest(
  url: string,
  init: RequestInit,
): Promise<RequestOutcome> {
  let response: Response;
  try {
    response = await globalThis.fetch(url, init);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return {
      kind: 'retry',
      error: new PresenceRequestError(`Network error: ${reason}`, 0),
    };
  }

  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }

  if (response.ok) {
    if (isRecord(body)) return { kind: 'ok', body };
    // A 200 that is not our JSON is usually a proxy or an HTML error page; it may well recover.
    return {
      kind: 'retry',
      error: new PresenceRequestError(
        `${init.method ?? 'GET'} ${url} answered ${response.status} without a JSON object`,
        response.status,
      ),
    };
  }

  const errorType =
    isRecord(body) && typeof body['error_type'] === 'string'
      ? body['error_type']
      : undefined;
  if (response.status === 429)
    return { kind: 'rate-limited', waitMs: retryAfterMs(response, body) };

  const messages =
    isRecord(body) && Array.isArray(body['errors'])
      ? (body['errors'] as unknown[])
      : [];
  const detail = typeof messages[0] === 'string' ? `: ${messages[0]}` : '';
  const error = new PresenceRequestError(
    `${init.method ?? 'GET'} ${url} failed with ${response.status}${detail}`,
    response.status,
    errorType,
  );
  const retryable = response.status >= 500 || response.status === 408;
  return { kind: retryable ? 'retry' : 'fatal', error };
}

/** `extras.wait_seconds` from the body (SPEC §3.2), else the `Retry-After` header, else undefined. */
function retryAfterMs(response: Response, body: unknown): number | undefined {
  const extras = isRecord(body) ? body['extras'] : undefined;
  const wait = isRecord(extras) ? extras['wait_seconds'] : undefined;
  if (typeof wait === 'number' && Number.isFinite(wait) && wait >= 0)
    return wait * 1000;
  const header = Number(response.headers.get('Retry-After'));
  if (
    response.headers.has('Retry-After') &&
    Number.isFinite(header) &&
    header >= 0
  )
    return header * 1000;
  return undefined;
}
