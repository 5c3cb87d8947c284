import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  audienceFor,
  canEnter,
  canView,
  publishRulesFor,
  toPresenceUser,
} from '../src/core/access.js';
import {
  isValidChannelName,
  isValidPrefix,
  parseChannelName,
} from '../src/core/channel-name.js';
import { isValidClientId } from '../src/core/client-id.js';
import {
  ChannelConfigError,
  normalizeChannelConfig,
} from '../src/core/config.js';
import {
  HttpError,
  InvalidAccess,
  toErrorBody,
  toErrorResponse,
} from '../src/core/errors.js';
import type { ChannelConfig, CurrentUser } from '../src/core/types.js';

const ann: CurrentUser = {
  id: 1,
  username: 'ann',
  name: 'Ann',
  avatar_template: '/a/{size}.png',
  groupIds: [10],
};
const bob: CurrentUser = {
  id: 2,
  username: 'bob',
  name: null,
  avatar_template: '/b/{size}.png',
  groupIds: [20, 21],
};

function config(input: Partial<ChannelConfig>): ChannelConfig {
  return normalizeChannelConfig(input);
}

describe('channel names', () => {
  it('rejects names that are not well-formed Unicode (lone surrogates), which Redis would merge', () => {
    for (const name of ['/a/\ud800', '/a/x\udfff', '/a/\udc00\ud800'])
      assert.equal(parseChannelName(name), null, JSON.stringify(name));
    assert.deepEqual(parseChannelName('/a/😀'), { prefix: 'a', rest: '😀' });
  });

  it('accepts /<prefix>/<rest> with any non-empty rest', () => {
    assert.deepEqual(parseChannelName('/site/online'), {
      prefix: 'site',
      rest: 'online',
    });
    assert.deepEqual(parseChannelName('/topic-x_1/280/reply'), {
      prefix: 'topic-x_1',
      rest: '280/reply',
    });
    assert.deepEqual(parseChannelName('/a/ünïcødé ✓'), {
      prefix: 'a',
      rest: 'ünïcødé ✓',
    });
    assert.equal(
      isValidChannelName('/a/' + 'x'.repeat(197)),
      true,
      '200 characters is the maximum',
    );
  });

  it('rejects everything else', () => {
    const invalid: unknown[] = [
      '',
      '/',
      '//x',
      '/site',
      '/site/',
      'site/online',
      '/si te/x',
      '/si.te/x',
      '/a/' + 'x'.repeat(198),
      '/site/on\nline',
      '/site/on\u0000line',
      '/site/\u007f',
      '/site/\u0085',
      null,
      undefined,
      42,
      ['/site/online'],
      { toString: () => '/site/online' },
    ];
    for (const name of invalid)
      assert.equal(
        parseChannelName(name),
        null,
        `${JSON.stringify(name)} is invalid`,
      );
  });

  it('validates prefixes with an anchored pattern', () => {
    for (const prefix of ['site', 'a', 'A-Z_09'])
      assert.equal(isValidPrefix(prefix), true, prefix);
    for (const prefix of [
      '',
      'a/b',
      'site\n',
      ' site',
      'ö',
      '/site',
      'site/',
      7,
    ]) {
      assert.equal(isValidPrefix(prefix), false, String(prefix));
    }
  });
});

describe('client ids', () => {
  it('accepts non-blank strings up to 64 characters', () => {
    assert.equal(isValidClientId('abc123'), true);
    assert.equal(isValidClientId('tab-😀'), true, 'a surrogate pair is fine');
    assert.equal(isValidClientId('x'.repeat(64)), true);
  });

  it('rejects blank, long, non-string, control-character and ill-formed Unicode ids', () => {
    for (const id of [
      '',
      '   ',
      'x'.repeat(65),
      'a\nb',
      'tab-\ud800', // a lone surrogate: Redis would store it as U+FFFD, colliding with 'tab-\ufffd'
      '\udc00tab',
      12,
      null,
      undefined,
      ['a'],
      { id: 'a' },
    ]) {
      assert.equal(isValidClientId(id), false, JSON.stringify(id));
    }
  });
});

describe('channel config normalisation', () => {
  it('applies the defaults', () => {
    assert.deepEqual(normalizeChannelConfig({}), {
      public: false,
      allowedUserIds: null,
      allowedGroupIds: null,
      countOnly: false,
      timeout: 60,
    });
  });

  it('keeps valid fields, deduplicates ids and treats empty lists as absent', () => {
    assert.deepEqual(
      normalizeChannelConfig({
        public: true,
        allowedUserIds: [1, 1, 2],
        allowedGroupIds: [],
        countOnly: true,
        timeout: 0.5,
      }),
      {
        public: true,
        allowedUserIds: [1, 2],
        allowedGroupIds: null,
        countOnly: true,
        timeout: 0.5,
      },
    );
  });

  it('keeps a positive integer maxUsers and leaves it out when absent or null', () => {
    assert.equal(normalizeChannelConfig({ maxUsers: 5 }).maxUsers, 5);
    assert.equal(
      'maxUsers' in normalizeChannelConfig({ maxUsers: null }),
      false,
    );
    assert.throws(
      () => normalizeChannelConfig({ maxUsers: 0 }),
      /`maxUsers` must be a positive integer .*got 0/,
    );
  });

  it('keeps a positive integer maxUsersShown, except on a count-only channel, which lists nobody', () => {
    assert.equal(
      normalizeChannelConfig({ maxUsersShown: 20 }).maxUsersShown,
      20,
    );
    assert.equal(
      'maxUsersShown' in
        normalizeChannelConfig({ maxUsersShown: 20, countOnly: true }),
      false,
    );
    assert.equal(
      'maxUsersShown' in normalizeChannelConfig({ maxUsersShown: null }),
      false,
    );
    assert.throws(
      () => normalizeChannelConfig({ maxUsersShown: 0 }),
      /`maxUsersShown` must be a positive integer \(the most users state and messages list\), got 0/,
    );
    assert.deepEqual(
      publishRulesFor(
        normalizeChannelConfig({ public: true, maxUsersShown: 3 }),
      ),
      { countOnly: false, audience: {}, maxUsersShown: 3 },
    );
  });

  it('rejects anything that is not a well-typed config', () => {
    const invalid: unknown[] = [
      undefined,
      'public',
      42,
      true,
      [],
      { timeout: 0 },
      { timeout: -1 },
      { timeout: Infinity },
      { timeout: NaN },
      { timeout: '60' },
      { timeout: 86_401 },
      { maxUsers: 0 },
      { maxUsers: -1 },
      { maxUsers: 2.5 },
      { maxUsers: '10' },
      { maxUsers: Infinity },
      { maxUsersShown: 0 },
      { maxUsersShown: 1.5 },
      { maxUsersShown: '10' },
      { public: 'yes' },
      { countOnly: 1 },
      { allowedUserIds: 1 },
      { allowedUserIds: ['1'] },
      { allowedUserIds: [1.5] },
      { allowedGroupIds: [null] },
      { allowedUserIDs: [1] },
      JSON.parse('{"__proto__": {"public": true}}'),
    ];
    for (const input of invalid) {
      assert.throws(
        () => normalizeChannelConfig(input),
        ChannelConfigError,
        JSON.stringify(input) ?? 'undefined',
      );
    }
  });
});

describe('access rules', () => {
  const matrix: Array<
    [string, ChannelConfig, { anon: boolean; ann: boolean; bob: boolean }]
  > = [
    ['public', config({ public: true }), { anon: true, ann: true, bob: true }],
    [
      'user list',
      config({ allowedUserIds: [1] }),
      { anon: false, ann: true, bob: false },
    ],
    [
      'group list',
      config({ allowedGroupIds: [21] }),
      { anon: false, ann: false, bob: true },
    ],
    [
      'user or group list',
      config({ allowedUserIds: [1], allowedGroupIds: [20] }),
      { anon: false, ann: true, bob: true },
    ],
    ['nobody', config({}), { anon: false, ann: false, bob: false }],
  ];

  for (const [label, channel, expected] of matrix) {
    it(`canView / canEnter on a ${label} channel`, () => {
      assert.equal(canView(channel, null), expected.anon, 'anonymous view');
      assert.equal(canView(channel, ann), expected.ann, 'ann view');
      assert.equal(canView(channel, bob), expected.bob, 'bob view');
      assert.equal(
        canEnter(channel, null),
        false,
        'anonymous visitors never enter',
      );
      assert.equal(canEnter(channel, ann), expected.ann, 'ann enter');
      assert.equal(canEnter(channel, bob), expected.bob, 'bob enter');
    });
  }

  it('tolerates a user without a group list', () => {
    const noGroups = { id: 9, groupIds: undefined } as unknown as CurrentUser;
    assert.equal(canView(config({ allowedGroupIds: [1] }), noGroups), false);
  });

  it('derives the publishing audience', () => {
    assert.deepEqual(
      audienceFor(config({ public: true, allowedUserIds: [1] })),
      {},
    );
    assert.deepEqual(audienceFor(config({ allowedUserIds: [1] })), {
      userIds: [1],
    });
    assert.deepEqual(audienceFor(config({ allowedGroupIds: [2] })), {
      groupIds: [2],
    });
    assert.deepEqual(
      audienceFor(config({ allowedUserIds: [1], allowedGroupIds: [2] })),
      { userIds: [1], groupIds: [2] },
    );
    assert.equal(
      audienceFor(config({ allowedUserIds: [], allowedGroupIds: [] })),
      null,
    );
    assert.equal(audienceFor(config({})), null);
    assert.deepEqual(
      publishRulesFor(config({ public: true, countOnly: true })),
      { countOnly: true, audience: {} },
    );
  });

  it('reduces users to exactly id, username, name and avatar_template', () => {
    const host = {
      ...ann,
      email: 'ann@example.com',
      admin: true,
    } as CurrentUser;
    assert.deepEqual(toPresenceUser(host), {
      id: 1,
      username: 'ann',
      name: 'Ann',
      avatar_template: '/a/{size}.png',
    });
    assert.deepEqual(Object.keys(toPresenceUser(host)), [
      'id',
      'username',
      'name',
      'avatar_template',
    ]);
    assert.throws(
      () => toPresenceUser({ ...ann, id: '1' } as unknown as CurrentUser),
      /user\.id must be an integer/,
    );
    assert.throws(
      () => toPresenceUser(null as unknown as CurrentUser),
      TypeError,
    );
  });
});

describe('errors', () => {
  it('renders an HttpError as the one JSON error shape', () => {
    assert.deepEqual(
      toErrorBody(HttpError.invalidParameters('client_id is required')),
      {
        errors: ['client_id is required'],
        error_type: 'invalid_parameters',
      },
    );
    assert.equal(HttpError.notLoggedIn().status, 403);
    assert.equal(HttpError.notFound().status, 404);
    assert.equal(HttpError.serviceUnavailable().status, 503);
  });

  it('gives rate-limit errors a Retry-After header and wait_seconds', () => {
    assert.deepEqual(toErrorResponse(HttpError.rateLimited(6.2)), {
      status: 429,
      body: {
        errors: [
          "You've performed this action too many times. Please wait 7 seconds before trying again.",
        ],
        error_type: 'rate_limit',
        extras: { wait_seconds: 7 },
      },
      headers: { 'Retry-After': '7' },
    });
    assert.equal(
      HttpError.rateLimited(0).extras?.['wait_seconds'],
      1,
      'never asks to wait 0 seconds',
    );
  });

  it('turns InvalidAccess into a 403 invalid_access', () => {
    const err = new InvalidAccess();
    assert.ok(err instanceof HttpError);
    assert.equal(toErrorResponse(err).status, 403);
    assert.equal(toErrorBody(err).error_type, 'invalid_access');
  });

  it('maps exposed body-parser errors to 4xx and hides everything else behind a 500', () => {
    const parseError = Object.assign(new Error('Unexpected token } in JSON'), {
      status: 400,
      expose: true,
    });
    assert.deepEqual(toErrorResponse(parseError), {
      status: 400,
      body: {
        errors: ['Unexpected token } in JSON'],
        error_type: 'invalid_parameters',
      },
    });
    const tooLarge = Object.assign(new Error('request entity too large'), {
      statusCode: 413,
      expose: true,
    });
    assert.equal(
      toErrorResponse(tooLarge).body.error_type,
      'payload_too_large',
    );
    const internal = toErrorResponse(
      new Error('ECONNREFUSED 10.0.0.1:6379 secret'),
    );
    assert.equal(internal.status, 500);
    assert.deepEqual(internal.body, {
      errors: ['An internal error occurred.'],
      error_type: 'server_error',
    });
    assert.equal(toErrorResponse('a string').status, 500);
    assert.equal(
      toErrorResponse(
        Object.assign(new Error('x'), { status: 500, expose: true }),
      ).status,
      500,
    );
  });
});
