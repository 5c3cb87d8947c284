import { module, test } from 'qunit';
import { setupTest } from 'dummy/tests/helpers';
import {
  PresenceChannel,
  PresenceChannelNotFound,
  PresenceRequestError,
  type EnterOptions,
  type PresenceConfig,
  type PresenceService,
  type PresenceUser,
} from 'ember-presence';
import PresenceServiceClass from 'ember-presence/services/presence';
import { setupPresenceTest } from './support/setup';

// Compile-time pins of the public signatures: ember-tsc fails if one of them drifts.
type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2
    ? true
    : false;
const pins: [
  Equals<PresenceChannel['users'], readonly PresenceUser[] | null | undefined>,
  Equals<PresenceChannel['count'], number | undefined>,
  Equals<PresenceChannel['countOnly'], boolean | undefined>,
  Equals<PresenceChannel['present'], boolean>,
  Equals<PresenceChannel['subscribed'], boolean>,
  Equals<PresenceChannel['error'], Error | undefined>,
  Equals<Parameters<PresenceChannel['enter']>, [options?: EnterOptions]>,
  Equals<ReturnType<PresenceChannel['enter']>, Promise<void>>,
  Equals<ReturnType<PresenceChannel['leave']>, Promise<void>>,
  Equals<Parameters<PresenceChannel['subscribe']>, [initialData?: unknown]>,
  Equals<ReturnType<PresenceService['getChannel']>, PresenceChannel>,
  Equals<PresenceConfig['heartbeatMs'], number | undefined>,
] = [true, true, true, true, true, true, true, true, true, true, true, true];

module('Unit | public API', function (hooks) {
  setupTest(hooks);
  setupPresenceTest(hooks);

  test('the app re-export and the Registry give the addon service', function (assert) {
    const presence = this.owner.lookup('service:presence');
    assert.true(presence instanceof PresenceServiceClass);
    assert.true(presence.getChannel('/site/online') instanceof PresenceChannel);
    assert.strictEqual(pins.length, 12);
  });

  test('errors are real Error subclasses with their names', function (assert) {
    const notFound = new PresenceChannelNotFound('/x/y');
    assert.true(notFound instanceof Error);
    assert.strictEqual(notFound.name, 'PresenceChannelNotFound');
    assert.strictEqual(notFound.channelName, '/x/y');
    const failed = new PresenceRequestError('nope', 403, 'not_logged_in');
    assert.strictEqual(failed.name, 'PresenceRequestError');
    assert.strictEqual(failed.status, 403);
  });
});
