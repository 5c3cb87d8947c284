/**
 * The demo (tests/dummy), built, served by the real `ember-presence-server` CLI, driven in Chromium by
 * people in separate browser contexts. Runs twice: on the embedded memory store (one process), and on
 * Redis with two server processes, each person on a different one.
 *
 *   node --import tsx --test --test-concurrency=1 e2e/*.e2e.ts     (see e2e/README.md)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { E2E_CHANNEL_TIMEOUT_S } from './e2e-config.js';
import {
  anonymous,
  launchBrowser,
  signIn,
  traffic,
  type Person,
} from './support/browser.js';
import {
  buildDemo,
  E2E_HEARTBEAT_MS,
  type BuiltDemo,
} from './support/build.js';
import {
  clearPresenceKeys,
  e2eKeyPrefix,
  e2eRedisUrl,
} from './support/redis.js';
import { startServer, type RunningServer } from './support/server.js';

/** The issue's promise: what one person does is on the other's screen within 2 s. */
const WITHIN_MS = 2000;
/** The server's auto-leave sweep runs every 5 s (createPresenceServer's default). */
const SWEEP_INTERVAL_MS = 5000;
/** Upper bound for any other wait (a page to render, the state to settle between tests). */
const SETTLE_MS = 5000;

const NAMES = {
  ann: 'Ann Archer',
  bob: 'Bob Baker',
  cyd: 'Cyd Carter',
  dee: 'Dee Drake',
};

let demo: BuiltDemo;
let browser: Browser;

before(async () => {
  demo = await buildDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  demo?.dispose();
});

describe('on the memory store (one server process)', () => {
  const servers: RunningServer[] = [];
  before(async () => {
    servers.push(await startServer({ staticDir: demo.dir }));
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  scenarios(() => ({ a: servers[0]!.url, b: servers[0]!.url }));
});

describe('on Redis (two server processes, one person on each)', () => {
  const redisUrl = e2eRedisUrl();
  const redisKeyPrefix = e2eKeyPrefix();
  const servers: RunningServer[] = [];
  before(async () => {
    await clearPresenceKeys(redisUrl, redisKeyPrefix);
    servers.push(
      ...(await Promise.all([
        startServer({ staticDir: demo.dir, redisUrl, redisKeyPrefix }),
        startServer({ staticDir: demo.dir, redisUrl, redisKeyPrefix }),
      ])),
    );
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await clearPresenceKeys(redisUrl, redisKeyPrefix).catch(() => undefined);
  });

  scenarios(() => {
    const [a, b] = servers;
    assert.notEqual(a!.url, b!.url);
    return { a: a!.url, b: b!.url };
  });
});

/**
 * Every scenario, with person A's browser on server `a` and person B's on server `b` (the same server on
 * the memory store).
 */
function scenarios(urls: () => { a: string; b: string }): void {
  const people: Person[] = [];

  /** Signs someone in on a server; they are closed (and waited gone) after the test. */
  async function person(base: string, username: string): Promise<Person> {
    const someone = await signIn(browser, base, username);
    people.push(someone);
    return someone;
  }

  /**
   * After each test: everyone closes their tab (the unload beacon leaves), and the next test starts only
   * once the server shows nobody online, so one test's people cannot linger into the next.
   */
  async function everyoneLeaves(): Promise<void> {
    const leaving = people.splice(0);
    for (const someone of leaving) {
      if (!someone.page.isClosed())
        await someone.page.close({ runBeforeUnload: true });
      await someone.context.close();
    }
    const deadline =
      Date.now() + E2E_CHANNEL_TIMEOUT_S * 1000 + SWEEP_INTERVAL_MS + SETTLE_MS;
    for (;;) {
      const online = await onlineUsernames(urls().a);
      if (online.length === 0) return;
      if (Date.now() > deadline)
        assert.fail(`still online after the test: ${online.join(', ')}`);
      await delay(200);
    }
  }

  /** Fails on uncaught errors of pages that were not meant to break. */
  function assertNoPageErrors(...someone: Person[]): void {
    for (const { username, errors } of someone) {
      assert.deepEqual(
        errors.map((error) => error.message),
        [],
        `uncaught errors in ${username}'s page`,
      );
    }
  }

  describe('the demo', { concurrency: 1 }, () => {
    it('B sees A appear in "Online now" within 2 s of A\'s page load; signing out leaves at once', async (t) => {
      t.after(everyoneLeaves);
      const { a, b } = urls();

      // B signs in through the demo's user picker, as a person would.
      const bob = await anonymousPerson();
      await bob.page.goto(`${b}/`);
      await bob.page.click('[data-test-login="bob"]');
      await bob.page.waitForSelector('[data-test-current-user="bob"]', {
        timeout: SETTLE_MS,
      });
      await bob.page.waitForSelector('[data-test-online-user="bob"]', {
        timeout: SETTLE_MS,
      });

      const ann = await person(a, 'ann');
      await ann.page.goto(`${a}/`);
      const loaded = Date.now();
      await bob.page.waitForSelector('[data-test-online-user="ann"]', {
        timeout: WITHIN_MS,
      });
      assert.ok(Date.now() - loaded <= WITHIN_MS);
      await ann.page.waitForSelector('[data-test-online-user="bob"]', {
        timeout: SETTLE_MS,
      });
      assert.equal(await text(bob, '[data-test-online-count]'), '2');

      // Signing out is leaving, at once.
      await bob.page.click('[data-test-logout]');
      const signedOut = Date.now();
      await ann.page.waitForSelector('[data-test-online-user="bob"]', {
        state: 'detached',
        timeout: WITHIN_MS,
      });
      assert.ok(Date.now() - signedOut <= WITHIN_MS);
      await bob.page.waitForSelector('[data-test-login="bob"]', {
        timeout: SETTLE_MS,
      });
      assertNoPageErrors(ann, bob);
    });

    it('B sees "A is replying…" within 2 s of A typing, and it goes when A submits', async (t) => {
      t.after(everyoneLeaves);
      const { a, b } = urls();
      const ann = await person(a, 'ann');
      const bob = await person(b, 'bob');
      await Promise.all([
        ann.page.goto(`${a}/topic/1`),
        bob.page.goto(`${b}/topic/1`),
      ]);
      await bob.page.waitForSelector('[data-test-online-user="ann"]', {
        timeout: SETTLE_MS,
      });

      await ann.page.click('[data-test-open-composer]');
      await ann.page
        .locator('[data-test-composer-text]')
        .pressSequentially('Hello Bob', {
          delay: 20,
        });
      const typed = Date.now();
      const replying = await bob.page.waitForSelector('[data-test-replying]', {
        timeout: WITHIN_MS,
      });
      assert.ok(Date.now() - typed <= WITHIN_MS);
      assert.equal(await replying.textContent(), `${NAMES.ann} is replying…`);
      assert.equal(
        await ann.page.$('[data-test-replying]'),
        null,
        'A is not told that A is replying',
      );

      await ann.page.click('[data-test-composer-submit]');
      const submitted = Date.now();
      await bob.page.waitForSelector('[data-test-replying]', {
        state: 'detached',
        timeout: WITHIN_MS,
      });
      assert.ok(Date.now() - submitted <= WITHIN_MS);
      assert.equal(await text(ann, '[data-test-reply-text]'), 'Hello Bob');
      assertNoPageErrors(ann, bob);
    });

    it('B sees A leave within 2 s of A closing the tab (the unload beacon)', async (t) => {
      t.after(everyoneLeaves);
      const { a, b } = urls();
      const ann = await person(a, 'ann');
      const bob = await person(b, 'bob');
      await bob.page.goto(`${b}/`);
      await ann.page.goto(`${a}/topic/1`);
      await bob.page.waitForSelector('[data-test-online-user="ann"]', {
        timeout: SETTLE_MS,
      });

      await ann.page.close({ runBeforeUnload: true });
      const closed = Date.now();
      await bob.page.waitForSelector('[data-test-online-user="ann"]', {
        state: 'detached',
        timeout: WITHIN_MS,
      });
      assert.ok(
        Date.now() - closed <= WITHIN_MS,
        'gone before any timeout could have removed A',
      );
      assertNoPageErrors(ann, bob);
    });

    it("A disappears after the channel timeout when A's network is cut", async (t) => {
      t.after(everyoneLeaves);
      const { a, b } = urls();
      const ann = await person(a, 'ann');
      const bob = await person(b, 'bob');
      await bob.page.goto(`${b}/`);
      await ann.page.goto(`${a}/`);
      await bob.page.waitForSelector('[data-test-online-user="ann"]', {
        timeout: SETTLE_MS,
      });

      // Every request of A's browser now fails: no heartbeat, no leave, no beacon reaches a server.
      await ann.context.route('**/*', (route) =>
        route.abort('internetdisconnected'),
      );
      await ann.context.setOffline(true);
      const cut = Date.now();

      // The last heartbeat went out at most one interval before the cut; A stays until it expires.
      const earliest = E2E_CHANNEL_TIMEOUT_S * 1000 - E2E_HEARTBEAT_MS - 500;
      const latest =
        E2E_CHANNEL_TIMEOUT_S * 1000 + SWEEP_INTERVAL_MS + WITHIN_MS;
      await bob.page.waitForSelector('[data-test-online-user="ann"]', {
        state: 'detached',
        timeout: latest,
      });
      const gone = Date.now() - cut;
      assert.ok(
        gone >= earliest,
        `A left after ${gone} ms, before the ${E2E_CHANNEL_TIMEOUT_S} s timeout`,
      );
      assert.ok(gone <= latest, `A left after ${gone} ms`);
      assertNoPageErrors(bob);
    });

    it('an outsider never sees a private team channel, not even that it exists', async (t) => {
      t.after(everyoneLeaves);
      const { a, b } = urls();
      // Team 1 is Ann and Bob's; Dee is only in team 2.
      const ann = await person(a, 'ann');
      const dee = await person(b, 'dee');
      await ann.page.goto(`${a}/team/1`);
      await ann.page.waitForSelector('[data-test-team-member="ann"]', {
        timeout: SETTLE_MS,
      });

      await dee.page.goto(`${b}/`);
      await dee.page.waitForSelector('[data-test-team-link="2"]', {
        timeout: SETTLE_MS,
      });
      assert.equal(
        await dee.page.$('[data-test-team-link="1"]'),
        null,
        'no link to team 1',
      );

      await dee.page.goto(`${b}/team/1`);
      await dee.page.waitForSelector('[data-test-not-found]', {
        timeout: SETTLE_MS,
      });
      const privateTeam = await text(dee, 'main');
      await dee.page.goto(`${b}/team/999`);
      await dee.page.waitForSelector('[data-test-not-found]', {
        timeout: SETTLE_MS,
      });
      assert.equal(
        await text(dee, 'main'),
        privateTeam,
        'the same page as a team that does not exist',
      );

      // Activity in team 1 while Dee is on the site reaches her in no way.
      await dee.page.goto(`${b}/team/1`);
      await dee.page.waitForSelector('[data-test-not-found]', {
        timeout: SETTLE_MS,
      });
      const bob = await person(a, 'bob');
      await bob.page.goto(`${a}/team/1`);
      await ann.page.waitForSelector('[data-test-team-member="bob"]', {
        timeout: SETTLE_MS,
      });

      const { states, messages } = await traffic(dee);
      for (const [channel, state] of states) {
        if (channel.startsWith('/team/1'))
          assert.equal(
            state,
            null,
            `GET ${channel} gave the outsider ${JSON.stringify(state)}`,
          );
      }
      assert.ok(
        messages.every((message) => message.channel !== '/presence/team/1'),
        'no team 1 message reached the outsider',
      );
      assert.ok(!(await text(dee, 'body')).includes('Team 1'));

      // Asking the bus directly for team 1's history answers exactly as for a team that does not exist.
      const [team1, team999] = await dee.page.evaluate<
        [string, string]
      >(`(async () => {
        const poll = async (channel) => {
          const response = await fetch('/message-bus/outsider-' + Math.random().toString(36).slice(2) + '/poll?dlp=t', {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Dont-Chunk': 'true' },
            body: new URLSearchParams({ [channel]: '0', __seq: '1' }),
          });
          return (await response.text()).replaceAll(channel, '<channel>');
        };
        return [await poll('/presence/team/1'), await poll('/presence/team/999')];
      })()`);
      assert.equal(team1, team999);
      assertNoPageErrors(ann, dee, bob);
    });

    it('the count-only visitors counter shows numbers and never names', async (t) => {
      t.after(everyoneLeaves);
      const { a, b } = urls();
      const ann = await person(a, 'ann');
      const bob = await person(b, 'bob');
      await ann.page.goto(`${a}/`);
      await bob.page.goto(`${b}/`);
      await bob.page.waitForFunction(
        `document.querySelector('[data-test-visitors-count]')?.textContent === '2'`,
        undefined,
        { timeout: SETTLE_MS },
      );

      // A third visitor arrives while B watches: the change reaches B as a number.
      const cyd = await person(a, 'cyd');
      await cyd.page.goto(`${a}/`);
      await bob.page.waitForFunction(
        `document.querySelector('[data-test-visitors-count]')?.textContent === '3'`,
        undefined,
        { timeout: WITHIN_MS + SETTLE_MS },
      );
      const counter = await text(bob, '[data-test-visitors]');
      assert.match(counter, /^\d+ visitors?$/);

      const { states, messages } = await traffic(bob);
      const counterStates = states.filter(
        ([channel]) => channel === '/stats/visitors',
      );
      assert.ok(counterStates.length >= 1, 'the counter state was fetched');
      for (const [, state] of counterStates) {
        assert.deepEqual(Object.keys(state ?? {}).sort(), [
          'count',
          'last_message_id',
        ]);
      }
      const deltas = messages.filter(
        (message) => message.channel === '/presence/stats/visitors',
      );
      assert.ok(deltas.length >= 1, 'a change reached the counter');
      for (const { data } of deltas) {
        assert.deepEqual(Object.keys(data as object), ['count_delta']);
      }
      for (const name of Object.values(NAMES)) {
        assert.ok(!counter.includes(name));
      }
      assertNoPageErrors(ann, bob, cyd);
    });
  });

  /** Someone not signed in yet (the user picker); closed after the test like everyone else. */
  async function anonymousPerson(): Promise<Person> {
    const someone = await anonymous(browser);
    people.push(someone);
    return someone;
  }
}

/** Usernames in `/site/online` according to the server (an anonymous GET: the channel is public). */
async function onlineUsernames(base: string): Promise<string[]> {
  const response = await fetch(`${base}/presence/get?channels[]=/site/online`, {
    signal: AbortSignal.timeout(SETTLE_MS),
  });
  const body = (await response.json()) as Record<
    string,
    { users?: { username: string }[] } | null
  >;
  return (body['/site/online']?.users ?? []).map((user) => user.username);
}

async function text(someone: Person, selector: string): Promise<string> {
  return (
    (await someone.page.textContent(selector, { timeout: SETTLE_MS })) ?? ''
  )
    .replace(/\s+/g, ' ')
    .trim();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
