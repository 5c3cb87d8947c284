import type Owner from '@ember/owner';
import type { FakeClock } from './fake-clock';
import type { FakePresenceServer } from './fake-server';

/** What `setupPresence` installed for the running test. */
export interface PresenceTestState {
  owner: Owner;
  clock: FakeClock;
  server: FakePresenceServer;
}

let current: PresenceTestState | undefined;

export function setPresenceTestState(
  state: PresenceTestState | undefined,
): void {
  current = state;
}

/** The running test's presence fakes; throws an error naming the fix outside `setupPresence`. */
export function presenceTestState(helper: string): PresenceTestState {
  if (!current) {
    throw new Error(
      `ember-presence/test-support: ${helper}() needs setupPresence(hooks) in this test module (after setupTest, setupRenderingTest or setupApplicationTest).`,
    );
  }
  return current;
}
