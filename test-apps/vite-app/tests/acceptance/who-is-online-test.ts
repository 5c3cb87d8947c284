import { module, test } from 'qunit';
import { visit } from '@ember/test-helpers';
import { setupApplicationTest } from 'vite-app/tests/helpers';
import {
  setupPresence,
  registerChannel,
  joinChannel,
  leaveChannel,
} from 'ember-presence/test-support';

// Written only against ember-presence/test-support, the way an app developer would: the fake presence
// server plays the backend and the other users.
const bob = { id: 2, username: 'bob', name: 'Bob', avatar_template: '' };
const alice = { id: 3, username: 'alice', name: 'Alice', avatar_template: '' };

module('Acceptance | who is online', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks);

  hooks.beforeEach(async function () {
    await registerChannel('/site/online', { public: true });
  });

  test('shows the users who were already online when the page loaded', async function (assert) {
    await joinChannel('/site/online', bob);

    await visit('/');

    assert.dom('[data-test-online-count]').hasText('1 online');
    assert.dom('[data-test-online-user]').exists({ count: 1 });
    assert.dom('[data-test-online-user]').hasText('bob');
  });

  test('updates the list as other users come and go', async function (assert) {
    await visit('/');
    assert.dom('[data-test-online-count]').hasText('0 online');
    assert.dom('[data-test-online-user]').doesNotExist();

    await joinChannel('/site/online', bob);
    await joinChannel('/site/online', alice);
    assert.dom('[data-test-online-count]').hasText('2 online');
    assert
      .dom('[data-test-online-user]')
      .exists({ count: 2 }, 'each user is listed once');

    await leaveChannel('/site/online', bob);
    assert.dom('[data-test-online-count]').hasText('1 online');
    assert.dom('[data-test-online-user]').hasText('alice');
  });
});
