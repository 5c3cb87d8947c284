import { buildWaiter } from '@ember/test-waiters';

/**
 * Test waiters, one per kind of finite work, so `await settled()` in an app's tests waits for presence
 * traffic. The message-bus long poll is deliberately NOT covered: it is parked on the server for up to
 * 25 s by design, and a waiter around it would keep `settled()` from ever resolving.
 */

/** Initial and resync fetches (`GET /presence/get`), from the moment a fetch is batched until it answers. */
export const getWaiter = buildWaiter('ember-presence:get');

/** An update that is due (debounce/throttle pending) or in flight (`POST /presence/update`). */
export const updateWaiter = buildWaiter('ember-presence:update');
