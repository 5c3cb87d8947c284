/**
 * Thrown (as a promise rejection) by `enter()` and `subscribe()` when the channel does not exist or the
 * current user may not enter/view it. The server makes the two cases indistinguishable on purpose
 * (docs/protocol.md §1), so the client cannot tell them apart either.
 *
 * @example
 * try {
 *   await channel.subscribe();
 * } catch (error) {
 *   if (error instanceof PresenceChannelNotFound) this.hidden = true;
 *   else throw error;
 * }
 */
export class PresenceChannelNotFound extends Error {
  override name = 'PresenceChannelNotFound';
  /** The channel that was asked for. */
  readonly channelName: string;

  constructor(channelName: string) {
    super(
      `Presence channel '${channelName}' does not exist or you may not access it`,
    );
    this.channelName = channelName;
  }
}

/**
 * Thrown (as a promise rejection) by `enter()`, and set as `channel.error`, when the server refused
 * presence because the channel already holds its `maxUsers` distinct users (the update answered `false`
 * with the reason `"full"`, docs/protocol.md §4). Users already present are never refused; enter again
 * later to retry.
 *
 * @example
 * try {
 *   await channel.enter();
 * } catch (error) {
 *   if (error instanceof PresenceChannelFull) this.roomIsFull = true;
 *   else throw error;
 * }
 */
export class PresenceChannelFull extends Error {
  override name = 'PresenceChannelFull';
  /** The channel that was asked for. */
  readonly channelName: string;

  constructor(channelName: string) {
    super(
      `Presence channel '${channelName}' is full: it already has as many users as it allows`,
    );
    this.channelName = channelName;
  }
}

/** What a {@link PresenceRequestError} knows about the request that failed. */
export interface PresenceRequestErrorDetails {
  /** The server's `error_type`, when it sent one (`not_logged_in`, `rate_limit`, …). */
  errorType?: string | undefined;
  /** The server's `extras.reason`, when it sent one (`invalid_token`, `token_expired`, …). */
  reason?: string | undefined;
  /** The absolute URL that was requested. */
  url?: string | undefined;
}

/**
 * A presence request failed in a way that retrying cannot fix (for example 403 `not_logged_in`, or an
 * answer that is not presence JSON). The message names the method, the URL, the status and the
 * server's reason, e.g. `POST https://presence.example.com/presence/update failed with 403 not_logged_in
 * (reason: invalid_token): You need to be logged in to do that.`; the same facts are fields.
 */
export class PresenceRequestError extends Error {
  override name = 'PresenceRequestError';
  /** The HTTP status; 0 for a network failure (server down, DNS, CORS refused). */
  readonly status: number;
  /** The server's `error_type`, when it sent one (`not_logged_in`, `rate_limit`, …). */
  readonly errorType: string | undefined;
  /** The server's `extras.reason`, when it sent one: `invalid_token`, `token_expired`, … */
  readonly reason: string | undefined;
  /** The absolute URL that was requested, when known. */
  readonly url: string | undefined;

  constructor(
    message: string,
    status: number,
    details: string | PresenceRequestErrorDetails = {},
  ) {
    super(message);
    const { errorType, reason, url } =
      typeof details === 'string' ? { errorType: details } : details;
    this.status = status;
    this.errorType = errorType;
    this.reason = reason;
    this.url = url;
  }
}
