import { module, test } from 'qunit';
import { visit } from '@ember/test-helpers';
import { setupApplicationTest } from 'ember-qunit';
import {
  setupPresence,
  registerChannel,
  joinChannel,
  leaveChannel,
} from 'ember-presence/test-support';

const me = { id: 2, username: 'bob', name: 'Bob' };
const ann = { id: 1, username: 'ann', name: 'Ann' };

module('Acceptance | replying', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks, { currentUser: me });

  hooks.beforeEach(function () {
    // Sign in the way your app does; the demo's session service takes the user directly.
    this.owner.lookup('service:session').assumeUser(me);
  });

  test('shows who is replying', async function (assert) {
    await registerChannel('/topic/1/reply');
    await visit('/topic/1');
    assert.dom('[data-test-replying]').doesNotExist();

    await joinChannel('/topic/1/reply', ann);
    assert.dom('[data-test-replying]').hasText('Ann is replying…');

    await leaveChannel('/topic/1/reply', ann);
    assert.dom('[data-test-replying]').doesNotExist();
  });
});
