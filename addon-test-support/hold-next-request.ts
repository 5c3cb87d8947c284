import { presenceTestState } from './-private/context';
import type { FakeEndpoint } from './-private/fake-server';

/**
 * The next request the app sends to `endpoint` hangs, unanswered, until you call the function returned
 * (then it is answered as usual) — to test loading states and what happens in between. The app's own
 * test waiter covers a presence request in flight, so `settled()` (and helpers that call it, such as
 * `click`) waits for the held one: release it before awaiting them, and look at the page in between with
 * `waitFor`/`waitUntil` or a plain timer.
 *
 * @example
 * const release = holdNextRequest('/presence/update');
 * void channel.enter();
 * await waitFor('[data-test-joining]');
 * release();
 * await settled();
 */
export function holdNextRequest(endpoint: FakeEndpoint): () => void {
  return presenceTestState('holdNextRequest').server.holdNextRequest(endpoint);
}
