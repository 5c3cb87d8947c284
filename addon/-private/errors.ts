/**
 * Thrown (as a promise rejection) by `enter()` and `subscribe()` when the channel does not exist or the
 * current user may not enter/view it. The server makes the two cases indistinguishable on purpose
 * (SPEC §1.2), so the client cannot tell them apart either.
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
 * A presence request failed in a way that retrying cannot fix (for example 403 `not_logged_in`, or an
 * answer that is not presence JSON). `status` is the HTTP status (0 for a network failure).
 */
export class PresenceRequestError extends Error {
  override name = 'PresenceRequestError';
  readonly status: number;
  /** The server's `error_type`, when it sent one (`not_logged_in`, `rate_limit`, …). */
  readonly errorType: string | undefined;

  constructor(message: string, status: number, errorType?: string) {
    super(message);
    this.status = status;
    this.errorType = errorType;
  }
}
