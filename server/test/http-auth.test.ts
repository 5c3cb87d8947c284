import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import request from 'supertest';
import type { Request } from 'express';
import { createApp, jwtCurrentUser, type PresenceApp } from '../src/index.js';
import {
  MAX_CACHED_TOKEN_LENGTH,
  MAX_CACHED_TOKENS_PER_USER,
  tokenRejection,
} from '../src/http/auth/jwt.js';
import { DEMO_USERS } from '../src/http/auth/demo-users.js';
import {
  bodyOf,
  CHANNELS,
  errorOf,
  registerMatrix,
  SAME_SITE_HEADERS,
  testOptions,
} from './support/http-fixtures.js';
import type { PresenceUser } from '../src/core/types.js';

interface DemoUsersBody {
  users: PresenceUser[];
  current_user: PresenceUser | null;
}

/**
 * The two shipped identity strategies: JWT (HS256 / RS256) and the demo login. Neither ever trusts an
 * identity the client merely asserts.
 */

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const NOW_S = Math.floor(Date.UTC(2026, 0, 1) / 1000);
const clock = () => NOW_S * 1000;
const { privateKey, publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
});
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const otherPair = generateKeyPairSync('rsa', { modulusLength: 2048 });

const CLAIMS = {
  sub: '7',
  username: 'gus',
  name: 'Gus',
  avatar_template: '/g/{size}.png',
  groups: [10],
};

function hs256(
  claims: JWTPayload,
  secret = SECRET,
  expiresAt = NOW_S + 3600,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(NOW_S)
    .setExpirationTime(expiresAt)
    .sign(new TextEncoder().encode(secret));
}

function rs256(claims: JWTPayload, key = privateKey): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256' })
    .setExpirationTime(NOW_S + 3600)
    .sign(key);
}

const apps: PresenceApp[] = [];
after(async () => {
  for (const a of apps) await a.presence.close();
});

function build(options: Parameters<typeof createApp>[0]): PresenceApp {
  const app = createApp({ ...testOptions(), clock, ...options });
  registerMatrix(app.presence);
  apps.push(app);
  return app;
}

/** Who the server thinks the token holder is: the users of a public channel after an update. */
function updateWith(app: PresenceApp, auth: Record<string, string>) {
  return request(app)
    .post('/presence/update')
    .set(SAME_SITE_HEADERS)
    .set(auth)
    .send({
      client_id: 'jwt-tab',
      present_channels: [CHANNELS.public, CHANNELS.groupList],
    });
}

describe('JWT (HS256)', () => {
  let app: PresenceApp;
  before(async () => {
    app = build({
      currentUser: await jwtCurrentUser({ secret: SECRET, clock }),
    });
  });

  it('accepts a valid bearer token and uses its claims (groups included)', async () => {
    const token = await hs256(CLAIMS);
    const res = await updateWith(app, {
      Authorization: `Bearer ${token}`,
    }).expect(200);
    assert.deepEqual(res.body, {
      [CHANNELS.public]: true,
      [CHANNELS.groupList]: true,
    });
    const state = await app.presence.stateFor(CHANNELS.public);
    assert.deepEqual(state && 'users' in state ? state.users : null, [
      { id: 7, username: 'gus', name: 'Gus', avatar_template: '/g/{size}.png' },
    ]);
  });

  it('accepts the token from the presence_token cookie, and a numeric sub', async () => {
    const token = await hs256({ ...CLAIMS, sub: 8 as unknown as string });
    await updateWith(app, {
      Cookie: `other=1; presence_token=${token}`,
    }).expect(200);
  });

  it('treats a bad signature as anonymous: public reads work, updates get 403 with reason invalid_token', async () => {
    const token = await hs256(
      CLAIMS,
      'a-different-secret-of-the-same-length-0123',
    );
    const res = await updateWith(app, {
      Authorization: `Bearer ${token}`,
    }).expect(403);
    assert.equal(errorOf(res).error_type, 'not_logged_in');
    assert.deepEqual(errorOf(res).extras, { reason: 'invalid_token' });
    const get = await request(app)
      .get(
        `/presence/get?channels[]=${encodeURIComponent(CHANNELS.public)}&channels[]=${encodeURIComponent(CHANNELS.groupList)}`,
      )
      .set('Authorization', `Bearer ${token}`)
      .expect(200);
    assert.equal(
      bodyOf<Record<string, unknown>>(get)[CHANNELS.groupList],
      null,
      'a forged group claim grants nothing',
    );
  });

  it('rejects an expired token with reason token_expired', async () => {
    const token = await hs256(CLAIMS, SECRET, NOW_S - 120);
    const res = await updateWith(app, {
      Authorization: `Bearer ${token}`,
    }).expect(403);
    assert.deepEqual(errorOf(res).extras, { reason: 'token_expired' });
  });

  for (const [label, claims] of [
    ['no sub', { ...CLAIMS, sub: undefined }],
    ['a non-numeric sub', { ...CLAIMS, sub: 'ann' }],
    ['no username', { ...CLAIMS, username: undefined }],
    ['groups that are not integers', { ...CLAIMS, groups: ['admins'] }],
    ['a non-string name', { ...CLAIMS, name: 42 }],
  ] as const) {
    it(`rejects a token with ${label}`, async () => {
      const token = await hs256(claims);
      const res = await updateWith(app, {
        Authorization: `Bearer ${token}`,
      }).expect(403);
      assert.deepEqual(errorOf(res).extras, { reason: 'invalid_token' });
    });
  }

  it('rejects an unsigned (alg: none) token and an RS256 token', async () => {
    const header = Buffer.from(
      JSON.stringify({ alg: 'none', typ: 'JWT' }),
    ).toString('base64url');
    const body = Buffer.from(
      JSON.stringify({ ...CLAIMS, exp: NOW_S + 60 }),
    ).toString('base64url');
    await updateWith(app, {
      Authorization: `Bearer ${header}.${body}.`,
    }).expect(403);
    await updateWith(app, {
      Authorization: `Bearer ${await rs256(CLAIMS)}`,
    }).expect(403);
  });

  it('ignores garbage tokens and malformed headers without erroring', async () => {
    await updateWith(app, { Authorization: 'Bearer not.a.jwt' }).expect(403);
    await updateWith(app, { Authorization: 'Basic dXNlcjpwYXNz' }).expect(403);
    await request(app)
      .get(`/presence/get?channels[]=${encodeURIComponent(CHANNELS.public)}`)
      .set('Cookie', 'presence_token=%E0%A4%A')
      .expect(200);
  });

  it('never takes an identity from request parameters', async () => {
    const res = await request(app)
      .post('/presence/update')
      .set(SAME_SITE_HEADERS)
      .send({
        client_id: 'x',
        user_id: 1,
        username: 'ann',
        present_channels: [CHANNELS.public],
      })
      .expect(403);
    assert.equal(errorOf(res).error_type, 'not_logged_in');
  });
});

describe('JWT: expiry and profile limits', () => {
  function noExpiry(claims: JWTPayload): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(SECRET));
  }

  it('rejects a token without exp as invalid_token, unless allowNoExpiry', async () => {
    const token = await noExpiry(CLAIMS);
    const strict = build({
      currentUser: await jwtCurrentUser({ secret: SECRET, clock }),
    });
    const res = await updateWith(strict, {
      Authorization: `Bearer ${token}`,
    }).expect(403);
    assert.deepEqual(errorOf(res).extras, { reason: 'invalid_token' });

    const lenient = build({
      currentUser: await jwtCurrentUser({
        secret: SECRET,
        clock,
        allowNoExpiry: true,
      }),
    });
    await updateWith(lenient, { Authorization: `Bearer ${token}` }).expect(200);
  });

  it('bounds profile fields: 60-character usernames pass, longer ones are rejected and logged', async () => {
    const lines: Record<string, unknown>[] = [];
    const app = build({
      currentUser: await jwtCurrentUser({
        secret: SECRET,
        clock,
        logger: { warn: (_m, details) => lines.push(details ?? {}) },
      }),
    });
    await updateWith(app, {
      Authorization: `Bearer ${await hs256({ ...CLAIMS, username: 'u'.repeat(60) })}`,
    }).expect(200);
    for (const claims of [
      { ...CLAIMS, username: 'u'.repeat(61) },
      { ...CLAIMS, name: 'n'.repeat(101) },
      { ...CLAIMS, avatar_template: `/${'a'.repeat(500)}` },
      { ...CLAIMS, groups: Array.from({ length: 1001 }, (_, i) => i) },
    ]) {
      const res = await updateWith(app, {
        Authorization: `Bearer ${await hs256(claims)}`,
      }).expect(403);
      assert.deepEqual(errorOf(res).extras, { reason: 'invalid_token' });
    }
    assert.match(
      String(lines[0]?.['detail']),
      /`username` must be at most 60 characters/,
    );
  });

  it('a currentUser hook returning a user beyond the limits is a server error that names the field', async () => {
    const errors: string[] = [];
    const app = build({
      currentUser: () => ({
        id: 1,
        username: 'x'.repeat(61),
        name: null,
        avatar_template: '',
        groupIds: [],
      }),
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: (message, fields) =>
          errors.push(`${message} ${JSON.stringify(fields)}`),
      },
    });
    await updateWith(app, {}).expect(500);
    assert.match(errors.join('\n'), /`username` must be at most 60 characters/);
  });
});

describe('JWT: rejected tokens are logged, rate-limited', () => {
  it('logs the reason of the first rejection at once and counts the rest of the window into the next line', async () => {
    let now = NOW_S * 1000;
    const lines: { message: string; details?: Record<string, unknown> }[] = [];
    const app = build({
      clock: () => now,
      currentUser: await jwtCurrentUser({
        secret: SECRET,
        clock: () => now,
        logger: {
          warn: (message, details) => lines.push({ message, details }),
        },
      }),
    });
    const wrong = await hs256(
      CLAIMS,
      'a-different-secret-of-the-same-length-0123',
    );
    for (let i = 0; i < 5; i++)
      await updateWith(app, { Authorization: `Bearer ${wrong}` }).expect(403);
    assert.equal(lines.length, 1, 'one line for a burst of rejections');
    assert.equal(lines[0]!.details?.['reason'], 'invalid_token');
    assert.match(String(lines[0]!.details?.['detail']), /signature/i);
    assert.ok(
      !JSON.stringify(lines).includes(wrong),
      'the token itself is never logged',
    );

    now += 10_000;
    const expired = await hs256(CLAIMS, SECRET, NOW_S - 3600);
    await updateWith(app, { Authorization: `Bearer ${expired}` }).expect(403);
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.details?.['reason'], 'token_expired');
    assert.equal(lines[1]!.details?.['alsoRejectedSinceLastLine'], 4);

    // A valid token and no token are never logged.
    now += 10_000;
    await updateWith(app, {
      Authorization: `Bearer ${await hs256(CLAIMS)}`,
    }).expect(200);
    await updateWith(app, {}).expect(403);
    assert.equal(lines.length, 2);
  });
});

describe('JWT: verified tokens are cached until they expire', () => {
  /** A request carrying `token` as a bearer token, for calling the hook directly. */
  function withToken(token: string): Request {
    return {
      get: (name: string) =>
        name.toLowerCase() === 'authorization' ? `Bearer ${token}` : undefined,
    } as unknown as Request;
  }

  it('serves a verified token from the cache: the same user, no second verification', async () => {
    const hook = await jwtCurrentUser({ secret: SECRET, clock });
    const token = await hs256(CLAIMS);
    const first = await hook(withToken(token));
    assert.equal(first?.id, 7);
    assert.equal(await hook(withToken(token)), first, 'the remembered user');
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.groupIds));
  });

  it('stops serving a token when jose would call it expired (same 30 s tolerance), with the reason', async () => {
    let now = NOW_S * 1000;
    const hook = await jwtCurrentUser({ secret: SECRET, clock: () => now });
    const token = await hs256(CLAIMS, SECRET, NOW_S + 60);
    const user = await hook(withToken(token));
    assert.ok(user);
    now = (NOW_S + 60 + 30) * 1000 - 1;
    assert.equal(await hook(withToken(token)), user, 'still within tolerance');
    now += 1;
    const req = withToken(token);
    assert.equal(await hook(req), null);
    assert.equal(tokenRejection(req), 'token_expired');
    assert.equal(await hook(withToken(token)), null, 'and not re-cached');
  });

  it('never caches a rejection: a bad signature or bad claims are refused (with their reason) every time', async () => {
    const hook = await jwtCurrentUser({ secret: SECRET, clock });
    const forged = await hs256(
      CLAIMS,
      'a-different-secret-of-the-same-length-0123',
    );
    const noUsername = await hs256({ sub: '7' });
    for (let i = 0; i < 2; i++) {
      for (const token of [forged, noUsername]) {
        const req = withToken(token);
        assert.equal(await hook(req), null);
        assert.equal(tokenRejection(req), 'invalid_token');
      }
    }
  });

  it('does not remember a token that is not valid yet, and accepts it once it is', async () => {
    let now = NOW_S * 1000;
    const hook = await jwtCurrentUser({ secret: SECRET, clock: () => now });
    const token = await new SignJWT(CLAIMS)
      .setProtectedHeader({ alg: 'HS256' })
      .setNotBefore(NOW_S + 120)
      .setExpirationTime(NOW_S + 3600)
      .sign(new TextEncoder().encode(SECRET));
    assert.equal(await hook(withToken(token)), null);
    now = (NOW_S + 120 - 30) * 1000;
    assert.equal((await hook(withToken(token)))?.id, 7);
  });

  it('is per hook: a token remembered under a rotated-out secret is refused by the new hook', async () => {
    const old = await jwtCurrentUser({ secret: SECRET, clock });
    const rotated = await jwtCurrentUser({
      secret: 'a-rotated-secret-that-is-long-enough-01234',
      clock,
    });
    const token = await hs256(CLAIMS);
    assert.ok(await old(withToken(token)));
    assert.equal(await rotated(withToken(token)), null);
  });

  it('is bounded: the least recently used token is forgotten first; 0 disables it', async () => {
    const hook = await jwtCurrentUser({
      secret: SECRET,
      clock,
      verifiedTokenCacheSize: 2,
    });
    const [a, b, c] = await Promise.all(
      ['1', '2', '3'].map((sub) => hs256({ ...CLAIMS, sub })),
    );
    const userA = await hook(withToken(a!));
    const userB = await hook(withToken(b!));
    assert.equal(await hook(withToken(a!)), userA, 'a is now the newest');
    await hook(withToken(c!)); // forgets b
    assert.equal(await hook(withToken(a!)), userA);
    const againB = await hook(withToken(b!));
    assert.deepEqual(againB, userB);
    assert.notEqual(againB, userB, 'b was verified again');

    const uncached = await jwtCurrentUser({
      secret: SECRET,
      clock,
      verifiedTokenCacheSize: 0,
    });
    const once = await uncached(withToken(a!));
    assert.notEqual(await uncached(withToken(a!)), once);
    await assert.rejects(
      jwtCurrentUser({ secret: SECRET, verifiedTokenCacheSize: -1 }),
      /verifiedTokenCacheSize/,
    );
  });

  it(`one user's distinct valid tokens take at most ${MAX_CACHED_TOKENS_PER_USER} entries: they cannot push other users out`, async () => {
    const hook = await jwtCurrentUser({
      secret: SECRET,
      clock,
      verifiedTokenCacheSize: 10,
    });
    const other = await hs256({ ...CLAIMS, sub: '1' });
    const otherUser = await hook(withToken(other));
    // A fresh token per login or refresh: same `sub`, distinct strings.
    const mine = await Promise.all(
      Array.from({ length: 20 }, (_, n) => hs256({ ...CLAIMS, jti: `t${n}` })),
    );
    const users = [];
    for (const token of mine) users.push(await hook(withToken(token)));
    assert.equal(await hook(withToken(other)), otherUser, 'still remembered');
    for (let n = mine.length - MAX_CACHED_TOKENS_PER_USER; n < mine.length; n++)
      assert.equal(await hook(withToken(mine[n]!)), users[n], `token ${n}`);
    // The oldest were forgotten: verified again.
    const first = await hook(withToken(mine[0]!));
    assert.deepEqual(first, users[0]);
    assert.notEqual(first, users[0], 'the first token was verified again');
  });

  it(`remembers no token longer than ${MAX_CACHED_TOKEN_LENGTH} characters, but still accepts it`, async () => {
    const hook = await jwtCurrentUser({ secret: SECRET, clock });
    const sized = async (length: number): Promise<string> => {
      const bare = await hs256({ ...CLAIMS, pad: '' });
      // base64url: 4 characters per 3 bytes of padding.
      const pad = 'p'.repeat(Math.floor(((length - bare.length) * 3) / 4));
      const token = await hs256({ ...CLAIMS, pad });
      assert.ok(Math.abs(token.length - length) <= 4, `${token.length}`);
      return token;
    };
    const long = await sized(MAX_CACHED_TOKEN_LENGTH + 8);
    assert.ok(long.length > MAX_CACHED_TOKEN_LENGTH);
    const once = await hook(withToken(long));
    assert.equal(once?.id, 7);
    const twice = await hook(withToken(long));
    assert.deepEqual(twice, once);
    assert.notEqual(twice, once, 'verified on every request');
    const short = await sized(MAX_CACHED_TOKEN_LENGTH - 8);
    assert.ok(short.length <= MAX_CACHED_TOKEN_LENGTH);
    const user = await hook(withToken(short));
    assert.equal(await hook(withToken(short)), user, 'remembered');
  });
});

describe('JWT (RS256)', () => {
  it('accepts tokens signed by the private key of the configured public key', async () => {
    const app = build({
      currentUser: await jwtCurrentUser({ publicKey: publicPem, clock }),
    });
    await updateWith(app, {
      Authorization: `Bearer ${await rs256(CLAIMS)}`,
    }).expect(200);
    const forged = await rs256(CLAIMS, otherPair.privateKey);
    await updateWith(app, { Authorization: `Bearer ${forged}` }).expect(403);
    // An HS256 token "signed" with the public key text (algorithm confusion) must not pass.
    await updateWith(app, {
      Authorization: `Bearer ${await hs256(CLAIMS, publicPem)}`,
    }).expect(403);
  });

  it('refuses to start with an invalid PEM or no key at all', async () => {
    await assert.rejects(
      jwtCurrentUser({ publicKey: 'not a pem' }),
      /SPKI PEM/,
    );
    await assert.rejects(jwtCurrentUser({}), /secret.*publicKey/);
  });

  it('reads a custom cookie name', async () => {
    const app = build({
      currentUser: await jwtCurrentUser({
        secret: SECRET,
        cookieName: 'jwt',
        clock,
      }),
    });
    await updateWith(app, { Cookie: `jwt=${await hs256(CLAIMS)}` }).expect(200);
    await updateWith(app, {
      Cookie: `presence_token=${await hs256(CLAIMS)}`,
    }).expect(403);
  });
});

describe('demo login', () => {
  it('is off by default: its routes are 404', async () => {
    const app = build({});
    await request(app).get('/presence/demo-users').expect(404);
    await request(app)
      .post('/presence/demo-login')
      .set(SAME_SITE_HEADERS)
      .send({ username: 'ann' })
      .expect(404);
    await request(app)
      .post('/presence/demo-logout')
      .set(SAME_SITE_HEADERS)
      .expect(404);
  });

  it('lists the demo users, logs in with a signed cookie, and logs out', async () => {
    const app = build({ currentUser: () => null, demoLogin: true });
    const list = await request(app).get('/presence/demo-users').expect(200);
    const listed = bodyOf<DemoUsersBody>(list);
    assert.equal(listed.users.length, DEMO_USERS.length);
    assert.equal(listed.current_user, null);
    assert.deepEqual(Object.keys(listed.users[0]!).sort(), [
      'avatar_template',
      'id',
      'name',
      'username',
    ]);

    const login = await request(app)
      .post('/presence/demo-login')
      .set(SAME_SITE_HEADERS)
      .type('form')
      .send('username=ann')
      .expect(200);
    assert.equal(bodyOf<DemoUsersBody>(login).current_user?.username, 'ann');
    const setCookie = String(login.headers['set-cookie']);
    assert.match(setCookie, /presence_demo=1\.[\w-]+;/);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Lax/);
    const cookie = setCookie.split(';')[0]!;

    const me = await request(app)
      .get('/presence/demo-users')
      .set('Cookie', cookie)
      .expect(200);
    assert.equal(bodyOf<DemoUsersBody>(me).current_user?.id, 1);
    await request(app)
      .post('/presence/update')
      .set(SAME_SITE_HEADERS)
      .set('Cookie', cookie)
      .send({ client_id: 'demo-tab', present_channels: [CHANNELS.public] })
      .expect(200, { [CHANNELS.public]: true });

    const logout = await request(app)
      .post('/presence/demo-logout')
      .set(SAME_SITE_HEADERS)
      .set('Cookie', cookie)
      .expect(200);
    assert.match(String(logout.headers['set-cookie']), /presence_demo=;/);
  });

  it('rejects a forged or tampered cookie', async () => {
    const app = build({ currentUser: () => null, demoLogin: true });
    for (const cookie of [
      'presence_demo=1',
      'presence_demo=1.AAAA',
      'presence_demo=2.' + 'x'.repeat(43),
    ]) {
      const res = await request(app)
        .get('/presence/demo-users')
        .set('Cookie', cookie)
        .expect(200);
      assert.equal(bodyOf<DemoUsersBody>(res).current_user, null, cookie);
    }
    // A cookie signed by another process's secret does not carry over.
    const other = build({ currentUser: () => null, demoLogin: true });
    const login = await request(other)
      .post('/presence/demo-login')
      .set(SAME_SITE_HEADERS)
      .send({ username: 'bob' });
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const res = await request(app)
      .get('/presence/demo-users')
      .set('Cookie', cookie)
      .expect(200);
    assert.equal(bodyOf<DemoUsersBody>(res).current_user, null);
  });

  it('400s for an unknown or missing username, 403s a cross-site login', async () => {
    const app = build({ currentUser: () => null, demoLogin: true });
    const res = await request(app)
      .post('/presence/demo-login')
      .set(SAME_SITE_HEADERS)
      .send({ username: 'mallory' })
      .expect(400);
    assert.match(String(errorOf(res).errors[0]), /ann, bob/);
    await request(app)
      .post('/presence/demo-login')
      .set(SAME_SITE_HEADERS)
      .send({})
      .expect(400);
    await request(app)
      .post('/presence/demo-login')
      .set('Origin', 'https://evil.example')
      .send({ username: 'ann' })
      .expect(403);
  });

  it('draws avatars locally', async () => {
    const app = build({ demoLogin: true });
    const res = await request(app)
      .get('/presence/demo-avatar/ann/48.svg')
      .expect(200);
    assert.match(res.headers['content-type'] ?? '', /image\/svg\+xml/);
    const text = (r: request.Response): string =>
      Buffer.isBuffer(r.body) ? r.body.toString('utf8') : r.text;
    assert.match(text(res), /<svg[^>]+width="48"/);
    const hostile = await request(app)
      .get('/presence/demo-avatar/%3Cscript%3E/99999.svg')
      .expect(200);
    assert.doesNotMatch(text(hostile), /<script/);
    assert.match(text(hostile), /width="512"/);
  });
});
