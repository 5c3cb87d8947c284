import { module, test } from 'qunit';
import { settled, visit } from '@ember/test-helpers';
import { setupApplicationTest } from 'ember-qunit';
import {
  setupPresence,
  registerChannel,
  joinChannel,
  leaveChannel,
  presentUsers,
  fakePresenceServer,
} from 'ember-presence/test-support';

const me = { id: 2, username: 'bob', name: 'Bob', groupIds: [1] };
const ann = { id: 1, username: 'ann', name: 'Ann', groupIds: [1] };
const cyd = { id: 3, username: 'cyd', name: 'Cyd', groupIds: [1] };

module('Acceptance | online now', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks, { currentUser: me });

  hooks.beforeEach(async function () {
    this.owner.lookup('service:session').assumeUser(me);
    await registerChannel('/site/online');
    await registerChannel('/stats/visitors', { public: true, countOnly: true });
  });

  test('a signed-in visitor is online while on the site', async function (assert) {
    await visit('/');
    assert.deepEqual(
      (await presentUsers('/site/online')).map((user) => user.username),
      ['bob'],
    );
    assert.dom('[data-test-online-user="bob"]').exists();
    assert.dom('[data-test-online-count]').hasText('1');
  });

  test('shows others coming and going', async function (assert) {
    await visit('/');
    await joinChannel('/site/online', ann);
    assert.dom('[data-test-online-user="ann"]').exists();
    assert.dom('[data-test-online-user="ann"] img').hasAttribute('alt', 'Ann');
    assert.dom('[data-test-online-count]').hasText('2');

    await leaveChannel('/site/online', ann);
    assert.dom('[data-test-online-user="ann"]').doesNotExist();
    assert.dom('[data-test-online-count]').hasText('1');
  });

  test('a busy site lists the first users to arrive and counts the others', async function (assert) {
    await registerChannel('/site/online', { public: true, maxUsersShown: 2 });
    await visit('/');
    await joinChannel('/site/online', ann);
    await joinChannel('/site/online', cyd);
    assert.dom('[data-test-online-user]').exists({ count: 2 });
    assert.dom('[data-test-online-user="cyd"]').doesNotExist();
    assert.dom('[data-test-online-count]').hasText('3');
    assert.dom('[data-test-online-more]').hasText('+1');

    // A listed user leaves: the next to have arrived takes their place.
    await leaveChannel('/site/online', ann);
    assert.dom('[data-test-online-user="ann"]').doesNotExist();
    assert.dom('[data-test-online-user="cyd"]').exists();
    assert.dom('[data-test-online-count]').hasText('2');
    assert.dom('[data-test-online-more]').doesNotExist();
  });

  test('signing out leaves "Online now"', async function (assert) {
    await visit('/');
    // What the sign-out button does, minus the request to the demo login.
    this.owner.lookup('service:session').assumeUser(null);
    await settled();
    assert.deepEqual(await presentUsers('/site/online'), []);
    assert.dom('[data-test-current-user]').doesNotExist();
  });

  test('the visitors counter shows a number and never a name', async function (assert) {
    await visit('/');
    await joinChannel('/stats/visitors', ann);
    await joinChannel('/stats/visitors', cyd);
    assert.dom('[data-test-visitors]').hasText('3 visitors');
    assert.dom('[data-test-visitors]').doesNotIncludeText('Ann');

    await leaveChannel('/stats/visitors', cyd);
    assert.dom('[data-test-visitors-count]').hasText('2');

    const answers = JSON.stringify(
      fakePresenceServer().requests.map((request) => request.response),
    );
    assert.notOk(answers.includes('"ann"'), 'no identity left the server');
  });
});

module('Acceptance | online now > anonymous visitor', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks, { currentUser: null });

  hooks.beforeEach(async function () {
    this.owner.lookup('service:session').assumeUser(null, [ann, me]);
    await registerChannel('/site/online');
  });

  test('sees who is online without being counted, and is offered the demo users', async function (assert) {
    await joinChannel('/site/online', ann);
    await visit('/');
    assert.dom('[data-test-online-user="ann"]').exists();
    assert.dom('[data-test-online-count]').hasText('1');
    assert.dom('[data-test-login="ann"]').exists();
    assert.dom('[data-test-login="bob"]').exists();
    assert.dom('[data-test-current-user]').doesNotExist();
  });
});
