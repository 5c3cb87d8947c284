import { presenceTestState } from './-private/context';
import type { FakeEndpoint, FakeFailure } from './-private/fake-server';

/**
 * The next request the app sends to `endpoint` gets `failure` instead of the fake server's answer, and
 * changes nothing there — to test the app's error and retry UI. Calls queue.
 *
 * @example
 * failNextRequest('/presence/update', { status: 500 });          // retried with back-off
 * failNextRequest('/presence/update', {
 *   status: 403,
 *   body: { errors: ['Log in again'], error_type: 'not_logged_in', extras: { reason: 'token_expired' } },
 * });                                                            // enter() rejects, channel.error says why
 * failNextRequest('/presence/update', {
 *   status: 429,
 *   body: { errors: ['Slow down'], error_type: 'rate_limit', extras: { wait_seconds: 5 } },
 * });                                                            // retried after 5 s of fake time
 */
export function failNextRequest(
  endpoint: FakeEndpoint,
  failure: FakeFailure,
): void {
  presenceTestState('failNextRequest').server.failNextRequest(
    endpoint,
    failure,
  );
}
