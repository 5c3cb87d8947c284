import { hasControlCharacters } from './channel-name.js';
import { HttpError } from './errors.js';

/**
 * Client ids (docs/protocol.md §1): the MessageBus client id of one browser tab, chosen by the browser. Stores treat
 * them as opaque strings; this is where their size and content are bounded.
 */

/** Longest accepted client id (MessageBus ids are 32 hex characters; this leaves room for other clients). */
export const MAX_CLIENT_ID_LENGTH = 64;

/**
 * `true` when `clientId` is a non-blank string of at most 64 characters without control characters or lone
 * surrogates.
 */
export function isValidClientId(clientId: unknown): clientId is string {
  return (
    typeof clientId === 'string' &&
    clientId.length <= MAX_CLIENT_ID_LENGTH &&
    clientId.trim().length > 0 &&
    !hasControlCharacters(clientId)
  );
}

/** The 400 `invalid_parameters` for a client id that fails {@link isValidClientId}, worded the same everywhere. */
export function invalidClientIdError(): HttpError {
  return HttpError.invalidParameters(
    `client_id must be a non-blank string of at most ${MAX_CLIENT_ID_LENGTH} characters of well-formed Unicode without control characters`,
  );
}
