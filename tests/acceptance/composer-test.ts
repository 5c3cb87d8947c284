import { module, test } from 'qunit';
import { click, fillIn, visit } from '@ember/test-helpers';
import { setupApplicationTest } from 'ember-qunit';
import {
  setupPresence,
  registerChannel,
  joinChannel,
  presentUsers,
  fakePresenceServer,
} from 'ember-presence/test-support';

const me = { id: 2, username: 'bob', name: 'Bob', groupIds: [1] };
const ann = { id: 1, username: 'ann', name: 'Ann', groupIds: [1] };
const cyd = { id: 3, username: 'cyd', name: 'Cyd', groupIds: [1] };

async function replying(): Promise<string[]> {
  return (await presentUsers('/topic/1/reply')).map((user) => user.username);
}

module('Acceptance | composer', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks, { currentUser: me });

  hooks.beforeEach(async function () {
    this.owner.lookup('service:session').assumeUser(me);
    await registerChannel('/topic/1/reply');
  });

  test('typing enters the reply channel and submitting leaves it', async function (assert) {
    await visit('/topic/1');
    await click('[data-test-open-composer]');
    assert.deepEqual(
      await replying(),
      [],
      'opening the composer is not replying',
    );

    await fillIn('[data-test-composer-text]', 'Hello');
    assert.deepEqual(await replying(), ['bob'], 'present while typing');

    await click('[data-test-composer-submit]');
    assert.deepEqual(await replying(), [], 'left on submit');
    assert.dom('[data-test-reply-text]').hasText('Hello');
  });

  test('emptying the box or cancelling leaves the reply channel', async function (assert) {
    await visit('/topic/1');
    await click('[data-test-open-composer]');
    await fillIn('[data-test-composer-text]', 'Hel');
    await fillIn('[data-test-composer-text]', '');
    assert.deepEqual(await replying(), [], 'left when the text is gone');

    await fillIn('[data-test-composer-text]', 'Hello again');
    assert.deepEqual(await replying(), ['bob']);
    await click('[data-test-composer-cancel]');
    assert.deepEqual(await replying(), [], 'left on cancel');
    assert.dom('[data-test-composer]').doesNotExist();
  });

  test('leaving the page leaves the reply channel', async function (assert) {
    await visit('/topic/1');
    await click('[data-test-open-composer]');
    await fillIn('[data-test-composer-text]', 'Half a thought');
    assert.deepEqual(await replying(), ['bob']);

    await visit('/');
    assert.deepEqual(
      await replying(),
      [],
      'the composer cleaned up after itself',
    );
  });

  test('names several people replying at once, never oneself', async function (assert) {
    await visit('/topic/1');
    await click('[data-test-open-composer]');
    await fillIn('[data-test-composer-text]', 'Me too');
    assert.dom('[data-test-replying]').doesNotExist('not told about oneself');

    await joinChannel('/topic/1/reply', ann);
    await joinChannel('/topic/1/reply', cyd);
    assert.dom('[data-test-replying]').hasText('Ann and Cyd are replying…');
  });

  test('someone who may not reply in the channel is refused once, not on every keystroke', async function (assert) {
    await registerChannel('/topic/1/reply', { allowedUserIds: [ann.id] });
    await visit('/topic/1');
    await click('[data-test-open-composer]');
    await fillIn('[data-test-composer-text]', 'H');
    await fillIn('[data-test-composer-text]', 'Hi');
    await fillIn('[data-test-composer-text]', 'Hi!');
    assert.deepEqual(await replying(), []);
    const updates = fakePresenceServer().requests.filter(
      (request) =>
        request.url.includes('/presence/update') &&
        JSON.stringify(request.body).includes('/topic/1/reply'),
    );
    assert.strictEqual(updates.length, 1, 'asked once');
    await click('[data-test-composer-submit]');
    assert.dom('[data-test-reply-text]').hasText('Hi!', 'replying still works');
  });

  test('an unknown topic is not found', async function (assert) {
    await visit('/topic/999');
    assert.dom('[data-test-not-found]').exists();
    assert.dom('[data-test-composer]').doesNotExist();
  });
});
