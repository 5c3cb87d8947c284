import assert from 'node:assert/strict';
import querystring from 'node:querystring';
import { afterEach, beforeEach, describe, it } from 'node:test';

import qs from 'qs';
import RouteRecognizerModule from 'route-recognizer';

import {
  handleGet,
  handleUpdate,
  type HandlerResponse,
  type UpdateOptions,
} from '../src/core/http-handlers.js';
import { InvalidAccess } from '../src/core/errors.js';
import { PresenceCore } from '../src/core/presence.js';
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

/** Every backlog of these tests is created at T, the clock's start. */
const msgId = messageIds(T);

// A UMD module: at run time the default import is the class, but its types describe an ES default export.
const RouteRecognizer =
  RouteRecognizerModule as unknown as typeof RouteRecognizerModule.default;

/**
 * Every way a query string or form body reaches the handlers: Express 5's two query parsers, body-parser's
 * two urlencoded modes (same options as body-parser 2) and pretender (route-recognizer).
 */
const PARSERS: Record<string, (input: string) => unknown> = {
  'Express simple query parser': (input) => querystring.parse(input),
  'Express extended query parser': (input) =>
    qs.parse(input, { allowPrototypes: true }),
  'urlencoded({ extended: false })': (input) =>
    qs.parse(input, {
      allowPrototypes: true,
      arrayLimit: input.split('&').length,
      depth: 0,
      parameterLimit: 1000,
      strictDepth: true,
    }),
  'urlencoded({ extended: true })': (input) =>
    qs.parse(input, {
      allowPrototypes: true,
      arrayLimit: Math.max(100, input.split('&').length),
      depth: 32,
      parameterLimit: 1000,
      strictDepth: true,
    }),
  pretender: (input) => new RouteRecognizer().parseQueryString(input),
};

const CONFIGS: Record<string, ChannelConfigInput | null> = {
  public: { public: true },
  users: { allowedUserIds: [1] },
  groups: { allowedGroupIds: [20] },
  count: { public: true, countOnly: true },
  nobody: {},
  missing: null,
  small: { public: true, maxUsers: 1 },
};

function encode(key: string, values: readonly string[]): string {
  return values
    .map((value) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join('&');
}

function names(count: number, prefix = '/public/c'): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}${index}`);
}

/** What a transport would send: the body after a JSON round trip. */
function wire(response: HandlerResponse): HandlerResponse {
  const sent: HandlerResponse = {
    status: response.status,
    body: JSON.parse(JSON.stringify(response.body)) as unknown,
  };
  if (response.headers) sent.headers = response.headers;
  return sent;
}

function assertInvalid(response: HandlerResponse, message?: RegExp): void {
  assert.equal(response.status, 400, JSON.stringify(response.body));
  const body = response.body as { errors: string[]; error_type: string };
  assert.equal(body.error_type, 'invalid_parameters');
  assert.equal(body.errors.length, 1);
  if (message) assert.match(body.errors[0]!, message);
}

/** Inputs of every shape that is not a valid request. */
const GARBAGE: unknown[] = [
  null,
  undefined,
  0,
  42,
  'channels[]=/public/x',
  true,
  [],
  ['/public/x'],
  () => '/public/x',
  Object.create(null),
  JSON.parse('{"__proto__": {"channels": ["/public/x"], "client_id": "tab"}}'),
  Object.create({
    channels: ['/public/x'],
    client_id: 'tab',
    present_channels: ['/public/x'],
  }),
];

for (const [storeName, createBackend] of backends) {
  describe(`presence HTTP handlers on ${storeName}`, () => {
    let backend: Backend;
    let now: number;
    let core: PresenceCore;
    const noLimit: UpdateOptions = { rateLimit: false };

    beforeEach(async () => {
      backend = await createBackend();
      now = T;
      core = new PresenceCore({
        store: backend.store,
        clock: () => now,
        logger: new CapturingLogger(),
      });
      for (const [prefix, config] of Object.entries(CONFIGS))
        core.registerPrefix(prefix, () => config);
    });

    afterEach(async () => {
      await core.stop();
      await backend.cleanup();
    });

    describe('GET /presence/get', () => {
      for (const [parserName, parse] of Object.entries(PARSERS)) {
        it(`reads channels[] as parsed by the ${parserName}`, async () => {
          await core.present(bob, '/public/x', 'tab');
          const one = wire(
            await handleGet(
              core,
              parse(encode('channels[]', ['/public/x'])),
              null,
            ),
          );
          assert.deepEqual(one, {
            status: 200,
            body: {
              '/public/x': {
                users: [
                  {
                    id: 2,
                    username: 'bob',
                    name: 'Bob',
                    avatar_template: '/b/{size}.png',
                  },
                ],
                count: 1,
                last_message_id: msgId(1),
              },
            },
          });
          const several = await handleGet(
            core,
            parse(
              encode('channels[]', [
                '/count/x',
                '/users/x',
                '/count/x',
                '/missing/x',
              ]),
            ),
            null,
          );
          assert.deepEqual(wire(several), {
            status: 200,
            body: {
              '/count/x': { count: 0, last_message_id: null },
              '/users/x': null,
              '/missing/x': null,
            },
          });
        });

        it(`accepts 50 unique channels and refuses 51 (${parserName})`, async () => {
          const fifty = await handleGet(
            core,
            parse(encode('channels[]', [...names(50), ...names(30)])),
            null,
          );
          assert.equal(fifty.status, 200);
          assert.equal(Object.keys(fifty.body as object).length, 50);
          assertInvalid(
            await handleGet(core, parse(encode('channels[]', names(51))), null),
            /at most 50/,
          );
        });
      }

      it('answers 400 when channels[] is missing or empty', async () => {
        for (const query of [
          {},
          { other: 'x' },
          { channels: [] },
          { 'channels[]': [] },
        ]) {
          assertInvalid(await handleGet(core, query, null));
        }
      });

      it('answers 400 when channels[] is not an array of strings', async () => {
        const invalid: unknown[] = [
          { channels: 5 },
          { channels: true },
          { channels: null },
          { channels: [1] },
          { channels: ['/public/x', 2] },
          { channels: [['/public/x']] },
          { channels: [null] },
          { channels: { a: '/public/x' } },
          { channels: { 0: '/public/x', x: '/public/y' } },
          { channels: { 0: ['/public/x'] } },
          { channels: {} },
          { 'channels[]': { '/public/x': '' } },
          { channels: ['/public/x'], 'channels[]': 3 },
          qs.parse('channels[x]=/public/x'),
          qs.parse('channels[0][]=/public/x'),
        ];
        for (const query of invalid)
          assertInvalid(
            await handleGet(core, query, null),
            /channels\[\]|channel/,
          );
      });

      it('answers 400 quickly for a huge list', async () => {
        const huge = Array.from(
          { length: 500_000 },
          (_, index) => `/public/${index}`,
        );
        assertInvalid(
          await handleGet(core, { channels: huge }, null),
          /at most 50/,
        );
        assertInvalid(
          await handleGet(core, { channels: [...names(10), 7, ...huge] }, null),
          /array of channel names/,
        );
      });

      it('answers 400 for every other shape of query, never throwing', async () => {
        for (const query of GARBAGE)
          assertInvalid(await handleGet(core, query, null));
      });

      it('maps odd and huge names to null, "__proto__" and "constructor" included', async () => {
        const huge = `/public/${'x'.repeat(10_000)}`;
        const response = await handleGet(
          core,
          {
            channels: ['__proto__', 'constructor', huge, '/public/\u0000', ''],
          },
          ann,
        );
        assert.equal(response.status, 200);
        const body = JSON.parse(JSON.stringify(response.body)) as Record<
          string,
          unknown
        >;
        assert.deepEqual(Object.keys(body), [
          '__proto__',
          'constructor',
          huge,
          '/public/\u0000',
          '',
        ]);
        assert.ok(Object.values(body).every((value) => value === null));
        assert.equal(Object.getPrototypeOf(response.body), Object.prototype);
      });

      it('merges channels and channels[] when a parser delivers both', async () => {
        const response = await handleGet(
          core,
          { channels: ['/public/a'], 'channels[]': '/public/b' },
          null,
        );
        assert.deepEqual(Object.keys(response.body as object), [
          '/public/b',
          '/public/a',
        ]);
      });

      it('needs no login and shows each requester only what they may view', async () => {
        const query = {
          channels: [
            '/public/x',
            '/users/x',
            '/groups/x',
            '/count/x',
            '/nobody/x',
            '/missing/x',
          ],
        };
        const visible = async (user: CurrentUser | null): Promise<string[]> => {
          const body = (await handleGet(core, query, user)).body as Record<
            string,
            unknown
          >;
          return Object.keys(body).filter((name) => body[name] !== null);
        };
        assert.deepEqual(await visible(null), ['/public/x', '/count/x']);
        assert.deepEqual(await visible(ann), [
          '/public/x',
          '/users/x',
          '/count/x',
        ]);
        assert.deepEqual(await visible(bob), [
          '/public/x',
          '/groups/x',
          '/count/x',
        ]);
        assert.deepEqual(await visible(carl), ['/public/x', '/count/x']);
      });

      describe('legacy channel=<name>', () => {
        it('returns the bare state', async () => {
          await core.present(ann, '/users/x', 'tab');
          for (const parse of Object.values(PARSERS)) {
            const response = wire(
              await handleGet(core, parse('channel=%2Fusers%2Fx'), ann),
            );
            assert.deepEqual(response, {
              status: 200,
              body: {
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
              },
            });
          }
        });

        it('answers the same 404 for a forbidden and a nonexistent channel', async () => {
          const forbidden = wire(
            await handleGet(core, { channel: '/users/x' }, carl),
          );
          assert.deepEqual(forbidden, {
            status: 404,
            body: {
              errors: ['The requested channel was not found.'],
              error_type: 'not_found',
            },
          });
          for (const name of [
            '/missing/x',
            '/nobody/x',
            '/unregistered/x',
            '',
            'x',
            '/users/x\n',
          ]) {
            assert.deepEqual(
              wire(await handleGet(core, { channel: name }, carl)),
              forbidden,
              name,
            );
          }
          assert.deepEqual(
            wire(await handleGet(core, { channel: '/users/x' }, null)),
            forbidden,
            'anonymous',
          );
        });

        it('answers 400 for a non-string channel or both forms at once', async () => {
          for (const query of [
            { channel: ['/public/x'] },
            { channel: ['/public/x', '/public/y'] },
            { channel: { a: 1 } },
            { channel: 3 },
            { channel: '/public/x', channels: ['/public/y'] },
            { channel: '/public/x', 'channels[]': '/public/y' },
          ]) {
            assertInvalid(await handleGet(core, query, null));
          }
        });
      });
    });

    describe('POST /presence/update', () => {
      it('answers 403 not_logged_in without a user, whatever the body', async () => {
        for (const body of [
          { client_id: 'tab', present_channels: ['/public/x'] },
          {},
          null,
          'garbage',
        ]) {
          assert.deepEqual(wire(await handleUpdate(core, body, null)), {
            status: 403,
            body: {
              errors: ['You need to be logged in to do that.'],
              error_type: 'not_logged_in',
            },
          });
        }
        assert.equal(await core.count('/public/x', null), 0);
      });

      for (const [parserName, parse] of Object.entries(PARSERS)) {
        it(`reads a form body as parsed by the ${parserName}`, async () => {
          const form = [
            'client_id=tab-1',
            encode('present_channels[]', [
              '/public/x',
              '/users/x',
              '/missing/x',
              '/public/x',
            ]),
            encode('leave_channels[]', ['/groups/x']),
          ].join('&');
          const response = wire(
            await handleUpdate(core, parse(form), carl, noLimit),
          );
          assert.deepEqual(response, {
            status: 200,
            body: { '/public/x': true, '/users/x': false, '/missing/x': false },
          });
          const single = await handleUpdate(
            core,
            parse('client_id=tab-1&present_channels[]=%2Fcount%2Fx'),
            carl,
            noLimit,
          );
          assert.deepEqual(wire(single).body, { '/count/x': true });
          assert.equal(await core.count('/count/x', carl), 1);
        });
      }

      it('accepts a JSON body and no lists at all', async () => {
        const json = JSON.parse(
          '{"client_id":"tab","present_channels":["/groups/x"],"leave_channels":[]}',
        ) as unknown;
        assert.deepEqual(
          wire(await handleUpdate(core, json, bob, noLimit)).body,
          { '/groups/x': true },
        );
        assert.deepEqual(
          wire(await handleUpdate(core, { client_id: 'tab' }, bob, noLimit)),
          { status: 200, body: {} },
        );
      });

      it('applies every present first, then every leave; leaves never show up or fail', async () => {
        await core.present(ann, '/users/x', 'tab');
        const response = await handleUpdate(
          core,
          {
            client_id: 'tab',
            present_channels: ['/public/x'],
            leave_channels: [
              '/public/x',
              '/users/x',
              '/missing/x',
              '/unregistered/x',
              'garbage',
              '',
            ],
          },
          ann,
          noLimit,
        );
        assert.deepEqual(wire(response), {
          status: 200,
          body: { '/public/x': true },
        });
        assert.equal(
          await core.count('/public/x', ann),
          0,
          'entered then left in the same request',
        );
        assert.equal(await core.count('/users/x', ann), 0);
      });

      it('answers false for a full channel and says why in _reasons; members still pass', async () => {
        const update = (
          user: CurrentUser,
          clientId: string,
          present: string[],
        ) =>
          handleUpdate(
            core,
            { client_id: clientId, present_channels: present },
            user,
            noLimit,
          ).then(wire);
        assert.deepEqual((await update(ann, 'tab', ['/small/x'])).body, {
          '/small/x': true,
        });
        assert.deepEqual(
          await update(bob, 'tab', ['/small/x', '/missing/x', '/public/x']),
          {
            status: 200,
            body: {
              '/small/x': false,
              '/missing/x': false,
              '/public/x': true,
              _reasons: { '/small/x': 'full' },
            },
          },
        );
        assert.deepEqual(
          (await update(ann, 'tab', ['/small/x'])).body,
          { '/small/x': true },
          'a heartbeat of a member',
        );
        assert.deepEqual(
          (await update(ann, 'tab-2', ['/small/x'])).body,
          { '/small/x': true },
          'another tab of a member',
        );
        await assert.rejects(core.present(bob, '/small/x', 'tab'), {
          name: 'ChannelFull',
        });
        await assert.rejects(
          core.present(carl, '/small/x', 'tab'),
          InvalidAccess,
        );
        assert.equal(await core.count('/small/x', ann), 1);
      });

      it('answers 400 for a missing, blank, long or non-string client_id', async () => {
        const invalid: unknown[] = [
          {},
          { client_id: '' },
          { client_id: '   ' },
          { client_id: 'x'.repeat(65) },
          { client_id: 'a\u0000b' },
          { client_id: 12 },
          { client_id: ['a', 'b'] },
          { client_id: { id: 'a' } },
          { client_id: null },
          querystring.parse('client_id=a&client_id=b'),
        ];
        for (const body of invalid)
          assertInvalid(
            await handleUpdate(core, body, ann, noLimit),
            /client_id/,
          );
        assert.equal(
          (
            await handleUpdate(
              core,
              { client_id: 'x'.repeat(64) },
              ann,
              noLimit,
            )
          ).status,
          200,
        );
      });

      it('answers 400 when a channel list is not an array of strings', async () => {
        for (const key of [
          'present_channels',
          'leave_channels',
          'present_channels[]',
          'leave_channels[]',
        ]) {
          for (const value of [
            1,
            true,
            null,
            [1],
            [['/public/x']],
            { a: '/public/x' },
            {},
            [{}],
          ]) {
            assertInvalid(
              await handleUpdate(
                core,
                { client_id: 'tab', [key]: value },
                ann,
                noLimit,
              ),
              /_channels/,
            );
          }
        }
        assert.equal(await core.count('/public/x', ann), 0, 'nothing applied');
      });

      it('accepts 50 entries per list and refuses 51', async () => {
        const fifty = await handleUpdate(
          core,
          {
            client_id: 'tab',
            present_channels: names(50),
            leave_channels: names(50, '/users/c'),
          },
          ann,
          noLimit,
        );
        assert.equal(fifty.status, 200);
        assert.equal(Object.keys(fifty.body as object).length, 50);
        for (const key of ['present_channels', 'leave_channels']) {
          assertInvalid(
            await handleUpdate(
              core,
              { client_id: 'tab', [key]: names(51, '/missing/c') },
              ann,
              noLimit,
            ),
            /at most 50/,
          );
        }
      });

      it('answers 400 for every other shape of body, never throwing', async () => {
        for (const body of GARBAGE)
          assertInvalid(await handleUpdate(core, body, ann, noLimit));
      });

      it('keeps prototype keys as ordinary channel names', async () => {
        const response = await handleUpdate(
          core,
          {
            client_id: 'tab',
            present_channels: ['__proto__', 'constructor', 'toString'],
          },
          ann,
          noLimit,
        );
        assert.equal(response.status, 200);
        assert.equal(Object.getPrototypeOf(response.body), Object.prototype);
        assert.equal(
          JSON.stringify(response.body),
          '{"__proto__":false,"constructor":false,"toString":false}',
        );
      });

      it('re-throws store failures for the transport to report', async () => {
        backend.store.present = () =>
          Promise.reject(new Error('connection lost'));
        await assert.rejects(
          handleUpdate(
            core,
            { client_id: 'tab', present_channels: ['/public/x'] },
            ann,
            noLimit,
          ),
          /connection lost/,
        );
        await assert.rejects(
          handleGet(core, { channels: ['/public/x'] }, null).then(() => {
            backend.store.state = () =>
              Promise.reject(new Error('connection lost'));
            return handleGet(core, { channels: ['/public/x'] }, null);
          }),
          /connection lost/,
        );
      });

      describe('rate limit', () => {
        const body = { client_id: 'tab', present_channels: ['/public/x'] };

        it('allows 20 updates per user per 10 s, then answers 429 with Retry-After', async () => {
          for (let i = 0; i < 20; i += 1)
            assert.equal(
              (await handleUpdate(core, body, ann)).status,
              200,
              `request ${i + 1}`,
            );
          now += 4000;
          assert.deepEqual(wire(await handleUpdate(core, body, ann)), {
            status: 429,
            body: {
              errors: [
                "You've performed this action too many times. Please wait 6 seconds before trying again.",
              ],
              error_type: 'rate_limit',
              extras: { wait_seconds: 6 },
            },
            headers: { 'Retry-After': '6' },
          });
          assert.equal(
            (await handleUpdate(core, body, bob)).status,
            200,
            'other users are not affected',
          );
          now += 6000;
          assert.equal(
            (await handleUpdate(core, body, ann)).status,
            200,
            'a new window opens',
          );
        });

        it('counts invalid requests too, but not anonymous ones', async () => {
          for (let i = 0; i < 5; i += 1)
            await handleUpdate(core, body, null, { rateLimit: { limit: 2 } });
          assert.equal(
            (await handleUpdate(core, {}, ann, { rateLimit: { limit: 2 } }))
              .status,
            400,
          );
          assert.equal(
            (await handleUpdate(core, body, ann, { rateLimit: { limit: 2 } }))
              .status,
            200,
          );
          assert.equal(
            (await handleUpdate(core, body, ann, { rateLimit: { limit: 2 } }))
              .status,
            429,
          );
        });

        it('is configurable and can be switched off', async () => {
          const options: UpdateOptions = {
            rateLimit: { limit: 1, windowMs: 1500 },
          };
          assert.equal(
            (await handleUpdate(core, body, carl, options)).status,
            200,
          );
          const limited = await handleUpdate(core, body, carl, options);
          assert.equal(limited.status, 429);
          assert.equal(
            limited.headers?.['Retry-After'],
            '2',
            'rounded up to whole seconds',
          );
          for (let i = 0; i < 30; i += 1)
            assert.equal(
              (await handleUpdate(core, body, bob, noLimit)).status,
              200,
            );
        });

        it('rejects a nonsensical rate-limit option as a programming error', async () => {
          await assert.rejects(
            handleUpdate(core, body, ann, { rateLimit: { limit: 0 } }),
            /rateLimit/,
          );
          await assert.rejects(
            handleUpdate(core, body, ann, { rateLimit: { windowMs: 1.5 } }),
            /rateLimit/,
          );
        });
      });
    });
  });
}
