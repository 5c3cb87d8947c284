import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { HttpError, InvalidAccess } from '../src/core/errors.js';
import {
  PresenceCore,
  type PresenceCoreOptions,
  type Timers,
} from '../src/core/presence.js';
import type { ChannelConfigInput, CurrentUser } from '../src/core/types.js';
import {
  ann,
  backends,
  bob,
  carl,
  CapturingLogger,
  T,
  type Backend,
} from './core-backends.js';
import { messageIds } from './support/message-ids.js';

const anonymous = null;
/** Every backlog of these tests is created at T, the clock's start. */
const msgId = messageIds(T);

/** The channels of the access matrix, one prefix each. */
const MATRIX_CONFIGS: Record<string, ChannelConfigInput | null> = {
  public: { public: true },
  users: { allowedUserIds: [1] },
  groups: { allowedGroupIds: [20] },
  count: { public: true, countOnly: true },
  nobody: {},
  missing: null,
};

/** Timers driven by the test's fake clock. */
class FakeTimers implements Timers {
  readonly pending = new Map<number, { due: number; callback: () => void }>();
  #nextId = 1;
  constructor(private readonly now: () => number) {}
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.pending.set(id, { due: this.now() + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Runs every timer due at the current fake time. */
  fireDue(): number {
    let fired = 0;
    for (const [id, timer] of [...this.pending]) {
      if (timer.due <= this.now()) {
        this.pending.delete(id);
        timer.callback();
        fired += 1;
      }
    }
    return fired;
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

for (const [storeName, createBackend] of backends) {
  describe(`PresenceCore on ${storeName}`, () => {
    let backend: Backend;
    let now: number;
    let logger: CapturingLogger;
    const cores: PresenceCore[] = [];

    function createCore(
      options: Partial<PresenceCoreOptions> = {},
    ): PresenceCore {
      const core = new PresenceCore({
        store: backend.store,
        clock: () => now,
        logger,
        ...options,
      });
      cores.push(core);
      return core;
    }

    function matrixCore(): PresenceCore {
      const core = createCore();
      for (const [prefix, config] of Object.entries(MATRIX_CONFIGS))
        core.registerPrefix(prefix, () => config);
      return core;
    }

    beforeEach(async () => {
      backend = await createBackend();
      now = T;
      logger = new CapturingLogger();
    });

    afterEach(async () => {
      await Promise.all(cores.splice(0).map((core) => core.stop()));
      await backend.cleanup();
    });

    describe('registerPrefix', () => {
      it('rejects invalid prefixes, non-function callbacks and a second registration', () => {
        const core = createCore();
        for (const prefix of ['', 'a/b', '/site', 'si te', 'site\n', 'ö']) {
          assert.throws(
            () => core.registerPrefix(prefix, () => null),
            /invalid prefix/,
            prefix,
          );
        }
        assert.throws(
          () => core.registerPrefix('site', 'nope' as unknown as () => null),
          /needs a function/,
        );
        core.registerPrefix('site', () => ({ public: true }));
        assert.throws(
          () => core.registerPrefix('site', () => null),
          /already registered/,
        );
      });
    });

    describe('config cache', () => {
      it('calls the callback once per TTL', async () => {
        const core = createCore({ configTtlMs: 1000 });
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          return { public: true, timeout: 30 };
        });
        const first = await core.getConfig('/site/online');
        assert.deepEqual(first, {
          public: true,
          allowedUserIds: null,
          allowedGroupIds: null,
          countOnly: false,
          timeout: 30,
        });
        await core.getConfig('/site/online');
        now += 999;
        await core.state('/site/online', null);
        assert.equal(calls, 1);
        now += 1;
        await core.getConfig('/site/online');
        assert.equal(calls, 2, 'expired after the TTL');
      });

      it('caches "not found" in the process for 10 s, never in the store', async () => {
        const core = createCore();
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          return null;
        });
        assert.equal(await core.getConfig('/site/gone'), null);
        assert.equal(await core.state('/site/gone', ann), null);
        assert.equal(calls, 1);
        assert.equal(
          await backend.store.getConfig('/site/gone', now),
          undefined,
          'no store entry: made-up names cost the store nothing',
        );
        now += 9_999;
        await core.getConfig('/site/gone');
        assert.equal(calls, 1);
        now += 1;
        await core.getConfig('/site/gone');
        assert.equal(
          calls,
          2,
          'asked again after 10 s: a new channel is found soon',
        );
      });

      it('invalidateConfig forgets a "not found" remembered in the process', async () => {
        const core = createCore();
        let exists = false;
        core.registerPrefix('topic', () => (exists ? { public: true } : null));
        assert.equal(await core.getConfig('/topic/9'), null);
        exists = true;
        assert.equal(await core.getConfig('/topic/9'), null, 'remembered');
        await core.invalidateConfig('/topic/9');
        assert.equal((await core.getConfig('/topic/9'))?.public, true);
      });

      it('shares cached results between processes through the store', async () => {
        const other = await backend.connect();
        const coreA = createCore();
        const coreB = createCore({ store: other });
        let callsA = 0;
        let callsB = 0;
        coreA.registerPrefix('site', () => {
          callsA += 1;
          return { public: true };
        });
        coreB.registerPrefix('site', () => {
          callsB += 1;
          return { public: true };
        });
        await coreA.getConfig('/site/online');
        assert.equal((await coreB.getConfig('/site/online'))?.public, true);
        assert.deepEqual([callsA, callsB], [1, 0]);
      });

      it('invalidateConfig makes every process ask the callback again', async () => {
        const other = await backend.connect();
        let allowed: number[] = [1];
        const coreA = createCore();
        const coreB = createCore({ store: other });
        for (const core of [coreA, coreB])
          core.registerPrefix('team', () => ({ allowedUserIds: allowed }));
        assert.ok(await coreA.state('/team/red', ann));
        allowed = [2];
        assert.ok(await coreB.state('/team/red', ann), 'still cached');
        await coreA.invalidateConfig('/team/red');
        assert.equal(
          await coreB.state('/team/red', ann),
          null,
          'revocation seen by the other process',
        );
        assert.ok(await coreB.state('/team/red', bob));
      });

      it('ignores invalidation of invalid names', async () => {
        const core = createCore();
        for (const name of ['', 'x', '/site/', 5 as unknown as string])
          await core.invalidateConfig(name);
      });

      it('does not cache a lookup that was invalidated while it ran', async () => {
        const core = createCore();
        const gate = deferred<ChannelConfigInput | null>();
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          return calls === 1 ? gate.promise : { allowedUserIds: [2] };
        });
        const stale = core.getConfig('/site/x');
        await tick();
        await core.invalidateConfig('/site/x');
        gate.resolve({ public: true });
        assert.equal(
          (await stale)?.public,
          true,
          'the running lookup still answers its callers',
        );
        assert.deepEqual(
          (await core.getConfig('/site/x'))?.allowedUserIds,
          [2],
        );
        assert.equal(calls, 2);
      });

      it('contains a throwing callback, logs it and does not cache the failure', async () => {
        const core = createCore();
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          if (calls === 1) throw new Error('database down');
          return { public: true };
        });
        assert.equal(await core.state('/site/online', ann), null);
        assert.equal(logger.entries.length, 1);
        assert.match(logger.entries[0]!.message, /prefix callback failed/);
        assert.equal(logger.entries[0]!.details?.['channel'], '/site/online');
        assert.match(
          String(logger.entries[0]!.details?.['error']),
          /database down/,
        );
        assert.ok(
          await core.state('/site/online', ann),
          'the next request asks again',
        );
        assert.equal(calls, 2);
      });

      it('contains a rejecting async callback', async () => {
        const core = createCore();
        core.registerPrefix('site', () => Promise.reject(new Error('timeout')));
        await assert.rejects(
          core.present(ann, '/site/online', 'tab'),
          InvalidAccess,
        );
        assert.equal(logger.entries.length, 1);
      });

      it('accepts async callbacks', async () => {
        const core = createCore();
        core.registerPrefix('site', async (name) => {
          await tick();
          return name === '/site/online' ? { public: true } : null;
        });
        assert.ok(await core.state('/site/online', null));
        assert.equal(await core.state('/site/other', null), null);
      });

      it('treats every invalid return value as a logged server error, not as a config', async () => {
        const core = createCore();
        const returns: unknown[] = [
          undefined,
          'public',
          true,
          42,
          [],
          { public: 'yes' },
          { timeout: -5 },
          { timeout: Infinity },
          { allowedUserIds: ['1'] },
          { allowedGroupIds: 3 },
          { allowedUserIDs: [1] },
        ];
        returns.forEach((value, index) =>
          core.registerPrefix(`p${index}`, () => value as ChannelConfigInput),
        );
        for (let index = 0; index < returns.length; index += 1) {
          assert.equal(
            await core.state(`/p${index}/x`, ann),
            null,
            JSON.stringify(returns[index]) ?? 'undefined',
          );
        }
        assert.equal(logger.entries.length, returns.length);
        assert.ok(
          logger.entries.every((entry) => /invalid config/.test(entry.message)),
        );
      });

      it('runs one callback for concurrent lookups of the same name', async () => {
        const core = createCore();
        const gate = deferred<ChannelConfigInput | null>();
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          return gate.promise;
        });
        const lookups = Array.from({ length: 5 }, () =>
          core.getConfig('/site/online'),
        );
        await tick();
        gate.resolve({ public: true });
        const results = await Promise.all(lookups);
        assert.equal(calls, 1);
        assert.ok(results.every((config) => config?.public === true));
      });

      it('calls the callback every time when the TTL is 0', async () => {
        const core = createCore({ configTtlMs: 0 });
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          return { public: true };
        });
        await core.getConfig('/site/a');
        await core.getConfig('/site/a');
        assert.equal(calls, 2);
      });

      it('never asks the callback about invalid names or unregistered prefixes', async () => {
        const core = createCore();
        let calls = 0;
        core.registerPrefix('site', () => {
          calls += 1;
          return { public: true };
        });
        for (const name of [
          '/site/',
          '/site',
          `/site/${'x'.repeat(200)}`,
          '/site/a\u0000b',
          '/other/x',
          'site/x',
        ]) {
          assert.equal(await core.getConfig(name), null, name);
          assert.equal(await core.state(name, ann), null, name);
          await assert.rejects(
            core.present(ann, name, 'tab'),
            InvalidAccess,
            name,
          );
        }
        assert.equal(calls, 0);
      });
    });

    describe('access matrix', () => {
      const requesters: Array<[string, CurrentUser | null]> = [
        ['anonymous', anonymous],
        ['allowed user', ann],
        ['group member', bob],
        ['outsider', carl],
      ];
      // Which requesters may view (state) and enter (present) each channel.
      const expected: Record<string, { view: string[]; enter: string[] }> = {
        public: {
          view: ['anonymous', 'allowed user', 'group member', 'outsider'],
          enter: ['allowed user', 'group member', 'outsider'],
        },
        users: { view: ['allowed user'], enter: ['allowed user'] },
        groups: { view: ['group member'], enter: ['group member'] },
        count: {
          view: ['anonymous', 'allowed user', 'group member', 'outsider'],
          enter: ['allowed user', 'group member', 'outsider'],
        },
        nobody: { view: [], enter: [] },
        missing: { view: [], enter: [] },
      };

      for (const [prefix, rules] of Object.entries(expected)) {
        for (const [label, requester] of requesters) {
          const mayView = rules.view.includes(label);
          const mayEnter = rules.enter.includes(label);
          it(`${label} on the ${prefix} channel: ${mayView ? 'sees' : 'does not see'} it, ${mayEnter ? 'may' : 'may not'} enter`, async () => {
            const core = matrixCore();
            const name = `/${prefix}/x`;
            const state = await core.state(name, requester);
            if (mayView) {
              assert.ok(state);
              assert.equal(
                'users' in state,
                prefix !== 'count',
                'count-only state never carries users',
              );
            } else {
              assert.equal(state, null);
            }
            if (mayEnter) {
              const result = await core.present(requester!, name, 'tab-1');
              assert.equal(result.changed, true);
            } else {
              // A forbidden channel and a missing one fail identically.
              await assert.rejects(
                core.present(requester as CurrentUser, name, 'tab-1'),
                (err: unknown) => {
                  assert.ok(err instanceof InvalidAccess);
                  assert.equal(
                    err.message,
                    'You are not allowed to access this channel.',
                  );
                  return true;
                },
              );
            }
          });
        }
      }
    });

    describe('presence', () => {
      it('publishes users with exactly id, username, name and avatar_template', async () => {
        const core = matrixCore();
        const host = {
          ...ann,
          email: 'ann@example.com',
          groupIds: [10, 11],
          admin: true,
        } as CurrentUser;
        const { message } = await core.present(host, '/public/x', 'tab-1');
        assert.deepEqual(message?.data, {
          entering_users: [
            {
              id: 1,
              username: 'ann',
              name: 'Ann',
              avatar_template: '/a/{size}.png',
            },
          ],
        });
        const state = await core.state('/public/x', null);
        assert.ok(state && 'users' in state);
        assert.deepEqual(
          state.users.map((user) => Object.keys(user)),
          [['id', 'username', 'name', 'avatar_template']],
        );
        assert.deepEqual(state, {
          users: [
            {
              id: 1,
              username: 'ann',
              name: 'Ann',
              avatar_template: '/a/{size}.png',
            },
          ],
          count: 1,
          last_message_id: msgId(1),
        });
      });

      it('publishes to the channel audience', async () => {
        const core = matrixCore();
        assert.equal(
          (
            await core.present(ann, '/users/x', 'tab')
          ).message?.user_ids?.join(),
          '1',
        );
        assert.equal(
          (
            await core.present(bob, '/groups/x', 'tab')
          ).message?.group_ids?.join(),
          '20',
        );
        const publicMessage = (await core.present(bob, '/public/x', 'tab'))
          .message;
        assert.equal(publicMessage?.user_ids, undefined);
        assert.equal(publicMessage?.group_ids, undefined);
      });

      it('a heartbeat and a second tab announce nothing; the last tab leaving does', async () => {
        const core = matrixCore();
        assert.ok((await core.present(ann, '/public/x', 'tab-1')).message);
        assert.equal(
          (await core.present(ann, '/public/x', 'tab-1')).message,
          null,
        );
        assert.equal(
          (await core.present(ann, '/public/x', 'tab-2')).message,
          null,
        );
        assert.equal(
          (await core.leave(ann, '/public/x', 'tab-1')).message,
          null,
        );
        const last = await core.leave(ann.id, '/public/x', 'tab-2');
        assert.deepEqual(last.message?.data, { leaving_user_ids: [1] });
        assert.deepEqual(await core.state('/public/x', null), {
          users: [],
          count: 0,
          last_message_id: msgId(2),
        });
      });

      it('count-only channels publish count deltas and a state without users', async () => {
        const core = matrixCore();
        assert.deepEqual(
          (await core.present(ann, '/count/x', 'tab')).message?.data,
          { count_delta: 1 },
        );
        assert.deepEqual(await core.state('/count/x', carl), {
          count: 1,
          last_message_id: msgId(1),
        });
        assert.equal(await core.count('/count/x', null), 1);
      });

      it('leave needs no access and is silent for unknown channels, clients and invalid input', async () => {
        const core = matrixCore();
        await core.present(ann, '/users/x', 'tab');
        for (const [name, clientId] of [
          ['/users/x', 'other-tab'],
          ['/missing/x', 'tab'],
          ['/nope/x', 'tab'],
          ['invalid', 'tab'],
          ['/users/x', ''],
          ['/users/x', 'x'.repeat(65)],
        ] as const) {
          assert.deepEqual(
            await core.leave(ann, name, clientId),
            { changed: false, message: null },
            `${name} ${clientId}`,
          );
        }
        assert.equal((await core.leave(ann, '/users/x', 'tab')).changed, true);
        assert.equal(
          (await core.leave(ann, '/users/x', 'tab')).changed,
          false,
          'leaving twice is a no-op',
        );
      });

      it('leave publishes with the stored rules once the channel is gone', async () => {
        const core = createCore();
        let config: ChannelConfigInput | null = { allowedUserIds: [1, 5] };
        core.registerPrefix('team', () => config);
        await core.present(ann, '/team/red', 'tab');
        config = null;
        await core.invalidateConfig('/team/red');
        const { message } = await core.leave(ann, '/team/red', 'tab');
        assert.deepEqual(message?.data, { leaving_user_ids: [1] });
        assert.deepEqual(message?.user_ids, [1, 5]);
      });

      it('leave uses the current rules while the channel exists', async () => {
        const core = createCore();
        let config: ChannelConfigInput = { allowedUserIds: [1] };
        core.registerPrefix('team', () => config);
        await core.present(ann, '/team/red', 'tab');
        config = { allowedGroupIds: [10] };
        await core.invalidateConfig('/team/red');
        const { message } = await core.leave(ann, '/team/red', 'tab');
        assert.deepEqual(message?.group_ids, [10]);
        assert.equal(message?.user_ids, undefined);
      });

      it('rejects an invalid client id with a 400 and anonymous presents with InvalidAccess', async () => {
        const core = matrixCore();
        for (const clientId of [
          '',
          '  ',
          'x'.repeat(65),
          7 as unknown as string,
        ]) {
          await assert.rejects(
            core.present(ann, '/public/x', clientId),
            (err: unknown) => {
              assert.ok(err instanceof HttpError);
              assert.equal(err.status, 400);
              return true;
            },
          );
        }
        await assert.rejects(
          core.present(null as unknown as CurrentUser, '/public/x', 'tab'),
          InvalidAccess,
        );
      });

      it("expires a client after the channel's timeout, fractional seconds included", async () => {
        const core = createCore();
        core.registerPrefix('site', () => ({ public: true, timeout: 1.5 }));
        await core.present(ann, '/site/online', 'tab');
        now += 1499;
        assert.equal((await core.sweep()).expiredClients, 0);
        now += 1;
        const result = await core.sweep();
        assert.equal(result.expiredClients, 1);
        assert.deepEqual(result.messages[0]?.data, { leaving_user_ids: [1] });
        assert.equal(await core.count('/site/online', null), 0);
      });

      it('states() maps each unique name to a state or null, "__proto__" included', async () => {
        const core = matrixCore();
        const states = await core.states(
          ['/public/x', '/public/x', '__proto__', '/users/x'],
          carl,
        );
        assert.deepEqual(Object.keys(states), [
          '/public/x',
          '__proto__',
          '/users/x',
        ]);
        assert.equal(Object.getPrototypeOf(states), Object.prototype);
        assert.equal(states['__proto__'], null);
        assert.equal(
          JSON.stringify(states),
          '{"/public/x":{"users":[],"count":0,"last_message_id":null},"__proto__":null,"/users/x":null}',
        );
      });

      it('state gives the embeddable state for a user', async () => {
        const core = matrixCore();
        await core.present(bob, '/groups/x', 'tab');
        assert.equal((await core.state('/groups/x', bob))?.count, 1);
        assert.equal(await core.state('/groups/x', ann), null);
      });
    });

    describe('publish', () => {
      it('passes host messages through to the bus with their audience', async () => {
        const core = createCore();
        const message = await core.publish(
          '/notifications/1',
          { unread: 3 },
          { userIds: [1] },
        );
        assert.equal(message.channel, '/notifications/1');
        assert.deepEqual(message.data, { unread: 3 });
        assert.deepEqual(message.user_ids, [1]);
        assert.equal(
          (await core.publish('/news', 'hello')).user_ids,
          undefined,
        );
      });

      it('refuses the reserved /presence namespace and names without a slash', async () => {
        const core = createCore();
        await assert.rejects(
          core.publish('/presence/site/online', {}),
          /reserved/,
        );
        await assert.rejects(core.publish('/presence', {}), /reserved/);
        await assert.rejects(core.publish('news', {}), /starting with "\/"/);
      });
    });

    describe('sweeper', () => {
      it('sweeps every 5 s, so a vanished client is gone within its timeout + 5 s', async () => {
        const timers = new FakeTimers(() => now);
        const sweeps: Array<Promise<unknown>> = [];
        // The store is fresh per test, so patching its own instance is safe.
        const store = backend.store;
        const sweepOriginal = store.sweep.bind(store);
        store.sweep = (at: number) => {
          const sweep = sweepOriginal(at);
          sweeps.push(sweep);
          return sweep;
        };
        const core = createCore({ timers });
        core.registerPrefix('site', () => ({ public: true, timeout: 60 }));
        await core.present(ann, '/site/online', 'tab');
        core.startSweeper();
        core.startSweeper(); // idempotent
        assert.equal(timers.pending.size, 1);

        const runDue = async (): Promise<void> => {
          timers.fireDue();
          await Promise.all(sweeps);
          await tick();
        };
        now += 4999;
        await runDue();
        assert.equal(sweeps.length, 0);
        for (let elapsed = 5000; elapsed <= 65_000; elapsed += 5000) {
          now = T + elapsed;
          await runDue();
        }
        assert.equal(sweeps.length, 13);
        assert.equal(
          await core.count('/site/online', null),
          0,
          'gone by timeout + 5 s',
        );
        assert.equal(timers.pending.size, 1, 'the next sweep is scheduled');

        await core.stop();
        assert.equal(timers.pending.size, 0);
        now += 60_000;
        await runDue();
        assert.equal(sweeps.length, 13, 'no sweep after stop()');
      });

      it('logs a failing sweep and keeps sweeping', async () => {
        const timers = new FakeTimers(() => now);
        let attempts = 0;
        backend.store.sweep = () => {
          attempts += 1;
          return Promise.reject(new Error('store unreachable'));
        };
        const core = createCore({ timers, sweepIntervalMs: 1000 });
        core.startSweeper();
        for (let i = 1; i <= 2; i += 1) {
          now += 1000;
          timers.fireDue();
          await tick();
        }
        assert.equal(attempts, 2);
        assert.equal(logger.entries.length, 2);
        assert.match(logger.entries[0]!.message, /sweep failed/);
        await core.stop();
      });

      it('uses unref-ed real timers by default and stop() clears them', async () => {
        const core = createCore({ sweepIntervalMs: 60_000 });
        const realSetTimeout = globalThis.setTimeout;
        const realClearTimeout = globalThis.clearTimeout;
        const created: NodeJS.Timeout[] = [];
        const cleared: unknown[] = [];
        globalThis.setTimeout = ((callback: () => void, ms: number) => {
          const handle = realSetTimeout(callback, ms);
          created.push(handle);
          return handle;
        }) as unknown as typeof setTimeout;
        globalThis.clearTimeout = ((handle: NodeJS.Timeout) => {
          cleared.push(handle);
          realClearTimeout(handle);
        }) as typeof clearTimeout;
        try {
          core.startSweeper();
          assert.equal(created.length, 1);
          assert.equal(
            created[0]!.hasRef(),
            false,
            'the sweeper never keeps the process alive',
          );
          await core.stop();
          assert.deepEqual(cleared, created);
        } finally {
          globalThis.setTimeout = realSetTimeout;
          globalThis.clearTimeout = realClearTimeout;
        }
      });
    });

    describe('options', () => {
      it('takes sweepIntervalMs: 0 as "no sweeper timer"', async () => {
        const timers = new FakeTimers(() => now);
        const core = createCore({ timers, sweepIntervalMs: 0 });
        core.startSweeper();
        assert.equal(timers.pending.size, 0);
        await core.stop();
      });

      it('rejects a missing store and nonsensical intervals', () => {
        assert.throws(
          () => new PresenceCore({} as PresenceCoreOptions),
          /needs a PresenceStore/,
        );
        assert.throws(
          () => createCore({ sweepIntervalMs: Number.NaN }),
          /sweepIntervalMs/,
        );
        assert.throws(() => createCore({ configTtlMs: -1 }), /configTtlMs/);
      });
    });
  });
}
