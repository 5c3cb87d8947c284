import { presenceTestState } from './-private/context';
import type { FakePresenceServer } from './-private/fake-server';

/**
 * The running test's fake server, for what the helpers do not cover: `requests` (every request it
 * answered), `core` (the real server core: `present`, `leave`, `state`, `publish`…), `store`, `bus`.
 */
export function fakePresenceServer(): FakePresenceServer {
  return presenceTestState('fakePresenceServer').server;
}
