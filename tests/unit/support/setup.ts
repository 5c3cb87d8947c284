import type { PresenceConfig } from 'ember-presence';
import type PresenceService from 'ember-presence/services/presence';
import { FakeClock } from 'ember-presence/test-support';
import { FakeBus } from './fake-bus';
import { TestServer } from './test-server';

/** What a presence test works with; filled in `beforeEach`. */
export interface PresenceTestContext {
  clock: FakeClock;
  bus: FakeBus;
  server: TestServer;
  /** The service (looked up lazily so a test can register things first). */
  presence(): PresenceService;
}

/**
 * Swaps the service's edges for fakes: a fake clock, an in-memory bus, and a pretender server. Call after
 * `setupTest`/`setupRenderingTest`.
 */
export function setupPresenceTest(
  hooks: NestedHooks,
  config: PresenceConfig = {},
): PresenceTestContext {
  const context = {} as PresenceTestContext;
  hooks.beforeEach(function (this: { owner: import('@ember/owner').default }) {
    const { owner } = this;
    context.clock = new FakeClock(1_700_000_000_000);
    context.bus = new FakeBus();
    context.server = new TestServer();
    owner.register('ember-presence:clock', context.clock, {
      instantiate: false,
    });
    owner.register('ember-presence:bus', context.bus, { instantiate: false });
    owner.register('ember-presence:config', config, { instantiate: false });
    context.presence = () => owner.lookup('service:presence');
  });
  hooks.afterEach(function () {
    context.server.shutdown();
  });
  return context;
}
