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
  const method = init.method ?? 'GET';
  const absolute = absoluteUrl(url);
  let response: Response;
  try {
    response = await globalThis.fetch(url, init);
  } catch (error) {
    const cause = error instanceof Error ? error.message : String(error);
    return {
      kind: 'retry',
      error: new PresenceRequestError(
        `${method} ${absolute} failed with a network error (${cause}): is the presence server running at that address, and does it allow this page's origin (ember-presence-server --allowed-origin ${pageOrigin()})?`,
        0,
        { url: absolute },
      ),
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
        `${method} ${absolute} answered ${response.status} without a JSON object: is baseUrl pointing at the presence server?`,
        response.status,
        { url: absolute },
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
  const extras = isRecord(body) ? body['extras'] : undefined;
  const reason =
    isRecord(extras) && typeof extras['reason'] === 'string'
      ? extras['reason']
      : undefined;
  const detail = typeof messages[0] === 'string' ? `: ${messages[0]}` : '';
  const error = new PresenceRequestError(
    `${method} ${absolute} failed with ${response.status}${errorType ? ` ${errorType}` : ''}${reason ? ` (reason: ${reason})` : ''}${detail}`,
    response.status,
    { errorType, reason, url: absolute },
  );
  return { kind: isRetryable(error) ? 'retry' : 'fatal', error };
}

/**
 * Whether a failed request may succeed if sent again: network failures (status 0), 5xx, 408 and 429.
 * Other 4xx (403 `not_logged_in`, 400) will not.
 */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof PresenceRequestError)) return false;
  const { status } = error;
  return status === 0 || status >= 500 || status === 408 || status === 429;
}

/** `url` resolved against the page, so an error says which server was asked. */
function absoluteUrl(url: string): string {
  try {
    return new URL(url, globalThis.location?.href).href;
  } catch {
    return url;
  }
}

function pageOrigin(): string {
  return globalThis.location?.origin ?? '<your app origin>';
}

/** `extras.wait_seconds` from the body (docs/protocol.md §4), else the `Retry-After` header, else undefined. */
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
