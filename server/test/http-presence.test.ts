import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import type { App } from 'supertest/types.js';
import {
  allowedUser,
  bodyOf,
  CHANNELS,
  errorOf,
  publicFields,
  type StateBody,
  fakeClock,
  groupMember,
  hostApp,
  matrixApp,
  outsider,
  SAME_SITE_HEADERS,
} from './support/http-fixtures.js';
import { messageIds } from './support/message-ids.js';
import type { CurrentUser } from '../src/core/types.js';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
});

function app(options: Parameters<typeof matrixApp>[0] = {}) {
  const built = matrixApp(options);
  closers.push(() => built.presence.close());
  return built;
}

function as(user: CurrentUser | null): Record<string, string> {
  return user ? { 'X-Test-User': String(user.id) } : {};
}

function getQuery(names: string[]): string {
  return names.map((n) => `channels[]=${encodeURIComponent(n)}`).join('&');
}

/** A same-origin `POST /presence/update` as `user`, body still to send. */
function postUpdate(target: App, user: CurrentUser | null) {
  return request(target)
    .post('/presence/update')
    .set(SAME_SITE_HEADERS)
    .set(as(user));
}

function update(
  target: App,
  user: CurrentUser | null,
  body: Record<string, unknown>,
) {
  return postUpdate(target, user).send(body);
}

describe('GET /presence/get (batched channels[])', () => {
  it('maps each name to its state, or null when missing', async () => {
    const clock = fakeClock();
    const msgId = messageIds(clock.now());
    const a = app({ clock: clock.now });
    await a.presence.present(allowedUser, CHANNELS.public, 'tab-1');
    const res = await request(a)
      .get(`/presence/get?${getQuery([CHANNELS.public, CHANNELS.nonexistent])}`)
      .expect(200);
    assert.match(res.headers['content-type'] ?? '', /application\/json/);
    assert.deepEqual(res.body, {
      [CHANNELS.public]: {
        users: [publicFields(allowedUser)],
        count: 1,
        last_message_id: msgId(1),
      },
      [CHANNELS.nonexistent]: null,
    });
    assert.equal(
      res.headers['set-cookie'],
      undefined,
      'presence endpoints never set cookies',
    );
  });

  it('answers uncacheable: Cache-Control no-store, an exact Content-Length, no ETag (so never a 304)', async () => {
    const a = app();
    await a.presence.present(allowedUser, CHANNELS.public, 'tab-1');
    const path = `/presence/get?${getQuery([CHANNELS.public])}`;
    const res = await request(a).get(path).expect(200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(
      res.headers['content-type'],
      'application/json; charset=utf-8',
    );
    assert.equal(
      res.headers['content-length'],
      String(Buffer.byteLength(res.text)),
    );
    assert.equal(res.headers['etag'], undefined);
    // A client (or proxy) that revalidates still gets the current state, never "not modified".
    await request(a).get(path).set('If-None-Match', '*').expect(200);
    // Errors too.
    const bad = await request(a).get('/presence/get').expect(400);
    assert.equal(bad.headers['cache-control'], 'no-store');
  });

  it('removes duplicates and accepts 50 unique names', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `/pub/r${i}`);
    const res = await request(app())
      .get(`/presence/get?${getQuery([...names, ...names.slice(0, 10)])}`)
      .expect(200);
    assert.equal(Object.keys(res.body as object).length, 50);
  });

  it('rejects more than 50 unique names with 400', async () => {
    const names = Array.from({ length: 51 }, (_, i) => `/pub/r${i}`);
    const res = await request(app())
      .get(`/presence/get?${getQuery(names)}`)
      .expect(400);
    assert.equal(errorOf(res).error_type, 'invalid_parameters');
    assert.ok(
      Array.isArray(errorOf(res).errors) &&
        typeof errorOf(res).errors[0] === 'string',
    );
  });

  it('rejects a missing channels[] with 400', async () => {
    const res = await request(app()).get('/presence/get').expect(400);
    assert.deepEqual(Object.keys(res.body as object).sort(), [
      'error_type',
      'errors',
    ]);
    assert.equal(errorOf(res).error_type, 'invalid_parameters');
  });

  it('rejects channels that are not a list of strings with 400', async () => {
    await request(app()).get('/presence/get?channels[x]=/pub/a').expect(400);
    await request(app()).get('/presence/get?foo=1').expect(400);
  });

  it('accepts indexed array notation (channels[0]=…)', async () => {
    const res = await request(app())
      .get(`/presence/get?channels[0]=${encodeURIComponent(CHANNELS.public)}`)
      .expect(200);
    assert.ok(CHANNELS.public in (res.body as object));
  });

  it('treats invalid names (too long, control characters) as nonexistent', async () => {
    const long = '/pub/' + 'x'.repeat(200);
    const res = await request(app())
      .get(`/presence/get?${getQuery([long, '/pub/a\u0001b', 'nope'])}`)
      .expect(200);
    assert.deepEqual(Object.values(res.body as object), [null, null, null]);
  });

  it('rejects channel and channels[] together', async () => {
    await request(app())
      .get(`/presence/get?channel=/pub/a&${getQuery(['/pub/b'])}`)
      .expect(400);
  });
});

describe('GET /presence/get?channel= (legacy single form)', () => {
  it('returns the bare state', async () => {
    const res = await request(app())
      .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.public)}`)
      .expect(200);
    assert.deepEqual(res.body, { users: [], count: 0, last_message_id: null });
  });

  it('404s for a channel that does not exist', async () => {
    const res = await request(app())
      .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.nonexistent)}`)
      .expect(404);
    assert.equal(errorOf(res).error_type, 'not_found');
  });

  it('rejects a repeated channel= with 400', async () => {
    await request(app())
      .get('/presence/get?channel=/pub/a&channel=/pub/b')
      .expect(400);
  });
});

describe('POST /presence/update', () => {
  it('answers true/false per present channel and never lists leaves', async () => {
    const a = app();
    const res = await update(a, allowedUser, {
      client_id: 'tab-1',
      present_channels: [CHANNELS.public, CHANNELS.nonexistent],
      leave_channels: [CHANNELS.userList],
    }).expect(200);
    assert.deepEqual(res.body, {
      [CHANNELS.public]: true,
      [CHANNELS.nonexistent]: false,
    });
    assert.equal(res.headers['set-cookie'], undefined);
    const state = await a.presence.stateFor(CHANNELS.public, null);
    assert.equal(state?.count, 1);
  });

  it('applies presents before leaves', async () => {
    const a = app();
    await update(a, allowedUser, {
      client_id: 'tab-1',
      present_channels: [CHANNELS.public],
      leave_channels: [CHANNELS.public],
    }).expect(200);
    assert.equal((await a.presence.stateFor(CHANNELS.public))?.count, 0);
  });

  it('403s not_logged_in without a user', async () => {
    const res = await update(app(), null, {
      client_id: 'tab-1',
      present_channels: [CHANNELS.public],
    }).expect(403);
    assert.equal(errorOf(res).error_type, 'not_logged_in');
  });

  for (const [label, clientId] of [
    ['missing', undefined],
    ['blank', '   '],
    ['longer than 64 characters', 'x'.repeat(65)],
    ['not a string', 42],
    ['not well-formed Unicode (a lone surrogate)', 'tab-\ud800'],
  ] as const) {
    it(`400s when client_id is ${label}`, async () => {
      const body: Record<string, unknown> = {
        present_channels: [CHANNELS.public],
      };
      if (clientId !== undefined) body['client_id'] = clientId;
      const res = await update(app(), allowedUser, body).expect(400);
      assert.equal(errorOf(res).error_type, 'invalid_parameters');
      assert.match(String(errorOf(res).errors[0]), /client_id/);
    });
  }

  it('accepts a 64-character client_id', async () => {
    await update(app(), allowedUser, {
      client_id: 'x'.repeat(64),
      present_channels: [CHANNELS.public],
    }).expect(200);
  });

  for (const field of ['present_channels', 'leave_channels']) {
    it(`400s when ${field} is not an array of strings`, async () => {
      await update(app(), allowedUser, {
        client_id: 'c',
        [field]: [1, 2],
      }).expect(400);
      await update(app(), allowedUser, {
        client_id: 'c',
        [field]: { a: 'b' },
      }).expect(400);
      await update(app(), allowedUser, {
        client_id: 'c',
        [field]: [['/pub/a']],
      }).expect(400);
    });

    it(`400s when ${field} has more than 50 entries, accepts 50`, async () => {
      const names = (n: number) =>
        Array.from({ length: n }, (_, i) => `/pub/r${i}`);
      await update(app(), allowedUser, {
        client_id: 'c',
        [field]: names(51),
      }).expect(400);
      await update(app(), allowedUser, {
        client_id: 'c',
        [field]: names(50),
      }).expect(200);
    });
  }

  it('accepts a form body the way jQuery encodes it (name[]=…)', async () => {
    const a = app();
    const res = await postUpdate(a, allowedUser)
      .type('form')
      .send(
        `client_id=tab-1&present_channels[]=${encodeURIComponent(CHANNELS.public)}` +
          `&present_channels[]=${encodeURIComponent(CHANNELS.nobody)}`,
      )
      .expect(200);
    assert.deepEqual(res.body, {
      [CHANNELS.public]: true,
      [CHANNELS.nobody]: false,
    });
  });

  it('accepts 50 form entries (no array-limit surprises from a query-string library)', async () => {
    const form = new URLSearchParams({ client_id: 'tab-1' });
    for (let i = 0; i < 50; i++)
      form.append('present_channels[]', `/pub/r${i}`);
    const res = await postUpdate(app(), allowedUser)
      .type('form')
      .send(form.toString())
      .expect(200);
    assert.equal(Object.keys(res.body as object).length, 50);
  });

  it('accepts multipart/form-data (FormData, as sendBeacon sends it)', async () => {
    const res = await postUpdate(app(), allowedUser)
      .field('client_id', 'tab-1')
      .field('present_channels[]', CHANNELS.public)
      .expect(200);
    assert.deepEqual(res.body, { [CHANNELS.public]: true });
  });

  it('accepts a text/plain beacon body (form-encoded or JSON)', async () => {
    const a = app();
    await postUpdate(a, allowedUser)
      .set('Content-Type', 'text/plain;charset=UTF-8')
      .send(
        `client_id=tab-1&present_channels[]=${encodeURIComponent(CHANNELS.public)}`,
      )
      .expect(200, { [CHANNELS.public]: true });
    await postUpdate(a, allowedUser)
      .set('Content-Type', 'text/plain')
      .send(
        JSON.stringify({
          client_id: 'tab-1',
          leave_channels: [CHANNELS.public],
        }),
      )
      .expect(200, {});
    assert.equal((await a.presence.stateFor(CHANNELS.public))?.count, 0);
  });

  it('400s on a bare present_channels=x or leave_channels=x (the contract wants name[]), and changes nothing', async () => {
    const target = app();
    for (const body of [
      `client_id=tab&present_channels=${encodeURIComponent(CHANNELS.public)}`,
      `client_id=tab&leave_channels=${encodeURIComponent(CHANNELS.public)}`,
    ]) {
      const res = await postUpdate(target, allowedUser)
        .type('form')
        .send(body)
        .expect(400);
      assert.equal(errorOf(res).error_type, 'invalid_parameters');
      assert.match(String(errorOf(res).errors[0]), /\[\]=<channel>/);
    }
    await update(target, allowedUser, {
      client_id: 'tab',
      present_channels: CHANNELS.public,
    }).expect(400);
    assert.equal((await target.presence.stateFor(CHANNELS.public))?.count, 0);
    // The bracket form, and a JSON array under the bare name, are the contract.
    await postUpdate(target, allowedUser)
      .type('form')
      .send(
        `client_id=tab&present_channels[]=${encodeURIComponent(CHANNELS.public)}`,
      )
      .expect(200, { [CHANNELS.public]: true });
    await update(target, allowedUser, {
      client_id: 'tab',
      present_channels: [CHANNELS.public],
    }).expect(200, { [CHANNELS.public]: true });
  });

  it('400s on a bare GET channels=x', async () => {
    const res = await request(app())
      .get(`/presence/get?channels=${encodeURIComponent(CHANNELS.public)}`)
      .expect(400);
    assert.equal(errorOf(res).error_type, 'invalid_parameters');
  });

  it('caps the channels one user is in at once (maxChannelsPerUser): beyond it presents answer false, across tabs', async () => {
    const target = app({ maxChannelsPerUser: 2 });
    await update(target, allowedUser, {
      client_id: 'tab-1',
      present_channels: ['/pub/1', '/pub/2'],
    }).expect(200, { '/pub/1': true, '/pub/2': true });
    await update(target, allowedUser, {
      client_id: 'tab-2',
      present_channels: ['/pub/2', '/pub/3'],
    }).expect(200, { '/pub/2': true, '/pub/3': false });
    assert.equal((await target.presence.stateFor('/pub/3'))?.count, 0);
    // Another user has their own slots; leaving one makes room in the same update.
    await update(target, groupMember, {
      client_id: 'tab-3',
      present_channels: ['/pub/3'],
    }).expect(200, { '/pub/3': true });
    await update(target, allowedUser, {
      client_id: 'tab-1',
      present_channels: ['/pub/2', '/pub/3'],
      leave_channels: ['/pub/1'],
    }).expect(200, { '/pub/2': true, '/pub/3': true });
  });

  it('a refused present gives its cap slot back: made-up or forbidden names never use up the cap', async () => {
    const target = app({ maxChannelsPerUser: 2 });
    for (let i = 0; i < 3; i++)
      await update(target, allowedUser, {
        client_id: 'tab',
        present_channels: [CHANNELS.nonexistent, CHANNELS.nobody],
      }).expect(200, {
        [CHANNELS.nonexistent]: false,
        [CHANNELS.nobody]: false,
      });
    await update(target, allowedUser, {
      client_id: 'tab',
      present_channels: ['/pub/1', '/pub/2'],
    }).expect(200, { '/pub/1': true, '/pub/2': true });
  });

  it('400s on malformed JSON, with the JSON error shape', async () => {
    const res = await postUpdate(app(), allowedUser)
      .set('Content-Type', 'application/json')
      .send('{"client_id": ')
      .expect(400);
    assert.equal(errorOf(res).error_type, 'invalid_parameters');
    await postUpdate(app(), allowedUser)
      .set('Content-Type', 'application/json')
      .send('[1,2]')
      .expect(400);
  });

  it('400s on a malformed multipart body', async () => {
    await postUpdate(app(), allowedUser)
      .set('Content-Type', 'multipart/form-data; boundary=xyz')
      .send('--xyz\r\nnot a part')
      .expect(400);
  });

  it('413s on a body over the size limit', async () => {
    const res = await postUpdate(app({ bodyLimitBytes: 1024 }), allowedUser)
      .send({ client_id: 'c', present_channels: ['/pub/' + 'x'.repeat(2000)] })
      .expect(413);
    assert.equal(errorOf(res).error_type, 'payload_too_large');
  });

  it('415s on an unsupported content type', async () => {
    const res = await postUpdate(app(), allowedUser)
      .set('Content-Type', 'application/xml')
      .send('<x/>')
      .expect(415);
    assert.equal(errorOf(res).error_type, 'unsupported_media_type');
  });

  it('rate limits per user: 429 with Retry-After and extras.wait_seconds', async () => {
    const clock = fakeClock();
    const a = app({
      clock: clock.now,
      rateLimit: { limit: 3, windowMs: 10_000 },
    });
    for (let i = 0; i < 3; i++)
      await update(a, allowedUser, { client_id: 'c' }).expect(200);
    const res = await update(a, allowedUser, { client_id: 'c' }).expect(429);
    assert.equal(errorOf(res).error_type, 'rate_limit');
    assert.equal(res.headers['retry-after'], '10');
    assert.equal(errorOf(res).extras?.['wait_seconds'], 10);
    await update(a, groupMember, { client_id: 'c' }).expect(200); // another user has their own budget
    clock.advance(10_000);
    await update(a, allowedUser, { client_id: 'c' }).expect(200);
  });

  it('defaults to 20 updates per 10 s', async () => {
    const a = app({ clock: fakeClock().now });
    for (let i = 0; i < 20; i++)
      await update(a, allowedUser, { client_id: 'c' }).expect(200);
    await update(a, allowedUser, { client_id: 'c' }).expect(429);
  });
});

describe('mounted in a host app', () => {
  for (const parser of ['simple', 'extended'] as const) {
    for (const hostParsers of [false, true]) {
      const label = `${parser} query parser${hostParsers ? ' + host body parsers' : ''}`;
      it(`serves both GET forms and form/JSON updates (${label})`, async () => {
        const { app: host, presence } = hostApp(parser, {}, hostParsers);
        closers.push(() => presence.close());
        await presence.present(allowedUser, CHANNELS.public, 'tab-0');
        const batched = await request(host)
          .get(
            `/presence/get?${getQuery([CHANNELS.public, CHANNELS.userList])}`,
          )
          .expect(200);
        const states = bodyOf<Record<string, StateBody | null>>(batched);
        assert.equal(states[CHANNELS.public]?.count, 1);
        assert.equal(states[CHANNELS.userList], null);
        await request(host)
          .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.public)}`)
          .expect(200);
        await request(host)
          .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.userList)}`)
          .expect(404);

        await postUpdate(host, groupMember)
          .type('form')
          .send(
            `client_id=t&present_channels[]=${encodeURIComponent(CHANNELS.groupList)}` +
              `&present_channels[]=${encodeURIComponent(CHANNELS.userList)}`,
          )
          .expect(200, {
            [CHANNELS.groupList]: true,
            [CHANNELS.userList]: false,
          });
        await postUpdate(host, groupMember)
          .send({ client_id: 't', present_channels: [CHANNELS.public] })
          .expect(200, { [CHANNELS.public]: true });
        const error = await postUpdate(host, groupMember)
          .send({ client_id: '' })
          .expect(400);
        assert.equal(errorOf(error).error_type, 'invalid_parameters');
      });
    }
  }
});

describe('errors', () => {
  it('a throwing identity hook is a 500 JSON error without internals', async () => {
    const res = await request(
      app({
        currentUser: () => {
          throw new Error('secret database detail');
        },
      }),
    )
      .get(`/presence/get?${getQuery([CHANNELS.public])}`)
      .expect(500);
    assert.deepEqual(res.body, {
      errors: ['An internal error occurred.'],
      error_type: 'server_error',
    });
    assert.doesNotMatch(res.text, /secret database detail|at .*\.ts/);
  });

  it('an identity hook returning a malformed user is a 500, not a corrupted state', async () => {
    const res = await request(
      app({ currentUser: () => ({ id: '1' }) as never }),
    )
      .get(`/presence/get?${getQuery([CHANNELS.public])}`)
      .expect(500);
    assert.equal(errorOf(res).error_type, 'server_error');
  });

  it('unknown paths are JSON 404s', async () => {
    const res = await request(app()).get('/presence/nope').expect(404);
    assert.equal(errorOf(res).error_type, 'not_found');
  });

  it('an outsider gets the same answers as for a nonexistent channel', async () => {
    const a = app();
    const forbidden = await request(a)
      .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.userList)}`)
      .set(as(outsider));
    const missing = await request(a)
      .get(`/presence/get?channel=${encodeURIComponent(CHANNELS.nonexistent)}`)
      .set(as(outsider));
    assert.equal(forbidden.status, missing.status);
    assert.equal(forbidden.text, missing.text);
  });
});
