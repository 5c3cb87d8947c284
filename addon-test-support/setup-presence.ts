import type Owner from '@ember/owner';
import { FakeClock } from './-private/fake-clock';
import {
  FakePresenceServer,
  type FakeServerOptions,
} from './-private/fake-server';
import { presenceTestState, setPresenceTestState } from './-private/context';
import { restorePageVisibility } from './-private/visibility';

export type { FakeServerOptions as SetupPresenceOptions };

/** The module hooks `setupPresence` needs (QUnit's `NestedHooks` fits). */
export interface PresenceHooks {
  beforeEach(callback: (this: { owner?: Owner }) => void | Promise<void>): void;
  afterEach(callback: () => void | Promise<void>): void;
}

/**
 * Installs a fake presence server for every test of the module: the real server's semantics (the same
 * core and MemoryStore the Node server runs) behind pretender, a fake clock shared by the app's presence
 * service and the server, and in-process delivery of change messages. Everything is torn down after each
 * test. Call it after `setupTest`, `setupRenderingTest` or `setupApplicationTest`.
 *
 * @example
 * module('Acceptance | topic', function (hooks) {
 *   setupApplicationTest(hooks);
 *   setupPresence(hooks, { currentUser: { id: 1, username: 'me' } });
 *
 *   test('shows who is replying', async function (assert) {
 *     registerChannel('/topic/1/reply');
 *     await visit('/t/1');
 *     await joinChannel('/topic/1/reply', { id: 2, username: 'ann' });
 *     assert.dom('.replying').hasText('ann is replying…');
 *   });
 * });
 */
export function setupPresence(
  hooks: PresenceHooks,
  options: FakeServerOptions = {},
): void {
  hooks.beforeEach(function (this: { owner?: Owner }) {
    const owner = this.owner;
    if (!owner) {
      throw new Error(
        'ember-presence/test-support: setupPresence(hooks) must come after setupTest, setupRenderingTest or setupApplicationTest, which provide the owner.',
      );
    }
    for (const key of ['debounceMs', 'throttleMs'] as const) {
      const value = options[key];
      if (
        value !== undefined &&
        (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      ) {
        throw new TypeError(
          `ember-presence/test-support: setupPresence(hooks, { ${key} }) must be a number of milliseconds ≥ 0, got ${String(value)}.`,
        );
      }
    }
    const clock = new FakeClock();
    const server = new FakePresenceServer(clock, options);
    owner.register('ember-presence:clock', clock, { instantiate: false });
    owner.register('ember-presence:bus', server.createBus(), {
      instantiate: false,
    });
    owner.register(
      'ember-presence:config',
      {
        debounceMs: options.debounceMs ?? 0,
        throttleMs: options.throttleMs ?? 0,
        ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
      },
      { instantiate: false },
    );
    if (options.currentUser === null) {
      owner.lookup('service:presence').setCurrentUser(null);
    }
    setPresenceTestState({ owner, clock, server });
  });

  hooks.afterEach(async function () {
    const state = presenceTestState('setupPresence');
    setPresenceTestState(undefined);
    restorePageVisibility();
    await state.server.shutdown();
    state.clock.reset();
  });
}
