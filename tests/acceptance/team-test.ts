import { module, test } from 'qunit';
import { click, visit } from '@ember/test-helpers';
import { setupApplicationTest } from 'ember-qunit';
import {
  setupPresence,
  registerChannel,
  joinChannel,
} from 'ember-presence/test-support';
import { MEMBERS_PAGE } from 'dummy/components/team-room';

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

  test('a crowded room lists a page of members, counts everyone, and shows more on demand', async function (assert) {
    const crowd = Array.from({ length: MEMBERS_PAGE + 10 }, (_, i) => ({
      id: 100 + i,
      username: `member${100 + i}`,
      name: `Member ${100 + i}`,
      avatar_template: `/avatars/member${100 + i}/{size}.png`,
    }));
    await registerChannel('/team/7', {
      allowedUserIds: [bob.id, ...crowd.map((user) => user.id)],
    });
    for (const user of crowd) await joinChannel('/team/7', user);

    await visit('/team/7');
    const everyone = crowd.length + 1; // Bob entered as he came in
    assert.dom('[data-test-team-count]').hasText(String(everyone));
    assert
      .dom('[data-test-team-member]')
      .exists({ count: MEMBERS_PAGE }, 'one page of rows');
    assert
      .dom('[data-test-team-more]')
      .hasAttribute('data-test-team-more', String(everyone - MEMBERS_PAGE));
    assert
      .dom('[data-test-avatar="member100"]')
      .hasAttribute('loading', 'lazy', 'off-screen avatars are not fetched')
      .hasAttribute(
        'src',
        `${location.origin}/avatars/member100/64.png`,
        'at twice the size, absolute',
      );

    await click('[data-test-team-show-more]');
    assert
      .dom('[data-test-team-member]')
      .exists({ count: everyone }, 'the rest, in arrival order');
    assert.dom('[data-test-team-member="bob"]').exists('the newest arrival');
    assert.dom('[data-test-team-more]').doesNotExist();
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
