import { module, test } from 'qunit';
import { visit } from '@ember/test-helpers';
import { setupApplicationTest } from 'ember-qunit';
import {
  setupPresence,
  registerChannel,
  joinChannel,
} from 'ember-presence/test-support';

const ann = { id: 1, username: 'ann', name: 'Ann', groupIds: [1] };
const bob = { id: 2, username: 'bob', name: 'Bob', groupIds: [1] };
const dee = { id: 4, username: 'dee', name: 'Dee', groupIds: [] };

module('Acceptance | team room', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks, { currentUser: bob });

  hooks.beforeEach(async function () {
    this.owner.lookup('service:session').assumeUser(bob);
    await registerChannel('/team/1', { allowedUserIds: [ann.id, bob.id] });
  });

  test('a member sees the room, links to it, and is in it', async function (assert) {
    await joinChannel('/team/1', ann);
    await visit('/');
    assert.dom('[data-test-team-link="1"]').exists();
    assert
      .dom('[data-test-team-link="2"]')
      .doesNotExist('team 2 is not theirs');

    await visit('/team/1');
    assert.dom('[data-test-team="1"]').exists();
    assert.dom('[data-test-team-member="ann"]').exists();
    assert.dom('[data-test-team-member="bob"]').exists('entered the room');
  });
});

module('Acceptance | team room > outsider', function (hooks) {
  setupApplicationTest(hooks);
  setupPresence(hooks, { currentUser: dee });

  hooks.beforeEach(async function () {
    this.owner.lookup('service:session').assumeUser(dee);
    await registerChannel('/team/1', { allowedUserIds: [ann.id, bob.id] });
  });

  test('gets the same "not found" as for a team that does not exist', async function (assert) {
    await joinChannel('/team/1', ann);
    await visit('/');
    assert.dom('[data-test-team-link]').doesNotExist();

    await visit('/team/1');
    assert.dom('[data-test-not-found]').exists();
    assert.dom('[data-test-team]').doesNotExist();
    const privateTeam = document.querySelector('main')?.textContent;
    assert.notOk(privateTeam?.includes('Ann'));

    await visit('/team/999');
    assert.dom('[data-test-not-found]').exists();
    assert.strictEqual(
      document.querySelector('main')?.textContent,
      privateTeam,
      'indistinguishable from a missing team',
    );
  });
});
