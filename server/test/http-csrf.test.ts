import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import {
  allowedUser,
  CHANNELS,
  errorOf,
  matrixApp,
} from './support/http-fixtures.js';

/**
 * docs/protocol.md §4: a cross-site page must not be able to make a user enter or leave, while the same-origin
 * `sendBeacon` on unload (no custom headers possible) keeps working.
 */

const app = matrixApp({ allowedOrigins: ['https://app.example.com'] });
after(() => app.presence.close());

const USER = { 'X-Test-User': String(allowedUser.id) };
const BODY = { client_id: 'tab', present_channels: [CHANNELS.public] };

function post(headers: Record<string, string>) {
  return request(app)
    .post('/presence/update')
    .set(USER)
    .set(headers)
    .send(BODY);
}

describe('CSRF: POST /presence/update', () => {
  it('rejects a cross-origin POST with 403 bad_csrf and changes nothing', async () => {
    const res = await post({
      Origin: 'https://evil.example',
      Cookie: 'session=1',
    }).expect(403);
    assert.equal(errorOf(res).error_type, 'bad_csrf');
    assert.equal((await app.presence.stateFor(CHANNELS.public))?.count, 0);
  });

  it('rejects Sec-Fetch-Site: cross-site / same-site from a foreign origin', async () => {
    await post({
      'Sec-Fetch-Site': 'cross-site',
      Origin: 'https://evil.example',
    }).expect(403);
    await post({
      'Sec-Fetch-Site': 'same-site',
      Origin: 'https://other.app.example.com',
    }).expect(403);
    await post({ 'Sec-Fetch-Site': 'cross-site' }).expect(403);
  });

  it('rejects Origin: null (sandboxed frames, data: pages)', async () => {
    await post({ Origin: 'null' }).expect(403);
  });

  it('rejects a foreign Referer when the browser omitted Origin', async () => {
    await post({
      Referer: 'https://evil.example/page',
      Cookie: 'session=1',
    }).expect(403);
  });

  it('rejects a cookie-carrying POST that says nothing about where it came from', async () => {
    await post({ Cookie: 'session=1' }).expect(403);
  });

  it('accepts a same-origin POST (Origin matches Host)', async () => {
    await post({
      Origin: 'http://presence.local:8080',
      Host: 'presence.local:8080',
      Cookie: 'session=1',
    }).expect(200);
    await post({ 'Sec-Fetch-Site': 'same-origin' }).expect(200);
    await post({
      Referer: 'http://presence.local/topic/1',
      Host: 'presence.local',
    }).expect(200);
  });

  it('accepts a beacon-style leave: same-origin form body with Origin, no custom headers', async () => {
    await post({ 'Sec-Fetch-Site': 'same-origin' }).expect(200);
    const res = await request(app)
      .post('/presence/update')
      .set(USER)
      .set({
        Origin: 'http://presence.local',
        Host: 'presence.local',
        'Sec-Fetch-Site': 'same-origin',
        Cookie: 's=1',
      })
      .set('Content-Type', 'text/plain;charset=UTF-8')
      .send(
        `client_id=tab&leave_channels[]=${encodeURIComponent(CHANNELS.public)}`,
      )
      .expect(200);
    assert.deepEqual(res.body, {});
    assert.equal((await app.presence.stateFor(CHANNELS.public))?.count, 0);
    await request(app)
      .post('/presence/update')
      .set(USER)
      .set({ Origin: 'http://presence.local', Host: 'presence.local' })
      .field('client_id', 'tab')
      .field('leave_channels[]', CHANNELS.public)
      .expect(200);
  });

  it('accepts an origin from the allow-list, and grants it CORS', async () => {
    const res = await post({
      Origin: 'https://app.example.com',
      Cookie: 'session=1',
    }).expect(200);
    assert.equal(
      res.headers['access-control-allow-origin'],
      'https://app.example.com',
    );
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    const preflight = await request(app)
      .options('/presence/update')
      .set('Origin', 'https://app.example.com')
      .set('Access-Control-Request-Method', 'POST')
      .expect(204);
    assert.match(
      String(preflight.headers['access-control-allow-headers']),
      /Authorization/,
    );
    const foreign = await request(app)
      .options('/presence/update')
      .set('Origin', 'https://evil.example')
      .expect(204);
    assert.equal(foreign.headers['access-control-allow-origin'], undefined);
  });

  it('accepts a non-browser client without cookies (backend, Bearer token)', async () => {
    await post({}).expect(200);
  });

  it('runs before authentication and body parsing', async () => {
    const res = await request(app)
      .post('/presence/update')
      .set({ Origin: 'https://evil.example' })
      .set('Content-Type', 'application/json')
      .send('{broken')
      .expect(403);
    assert.equal(errorOf(res).error_type, 'bad_csrf');
  });

  it('does not apply to GET', async () => {
    await request(app)
      .get(`/presence/get?channels[]=${encodeURIComponent(CHANNELS.public)}`)
      .set('Origin', 'https://evil.example')
      .expect(200);
  });
});

describe('CSRF: X-Forwarded-Host is believed only behind a declared proxy', () => {
  const forged = {
    'X-Forwarded-Host': 'evil.example',
    Origin: 'https://evil.example',
    Cookie: 'session=1',
  };

  it('by default, a forwarded host from any peer (loopback included) does not make a foreign origin "own"', async () => {
    const target = matrixApp();
    try {
      const res = await request(target)
        .post('/presence/update')
        .set(USER)
        .set(forged)
        .send(BODY)
        .expect(403);
      assert.equal(errorOf(res).error_type, 'bad_csrf');
    } finally {
      await target.presence.close();
    }
  });

  it("with trustProxy: 'loopback' (a proxy on this machine rewrites Host), the forwarded host is the server's own", async () => {
    const target = matrixApp({ trustProxy: 'loopback' });
    try {
      await request(target)
        .post('/presence/update')
        .set(USER)
        .set(forged)
        .send(BODY)
        .expect(200);
    } finally {
      await target.presence.close();
    }
  });
});

describe('CORS: one policy for every route', () => {
  // What a cross-origin page sends: the addon's fetches (Content-Type, a CSRF token, a bearer token) and its
  // message-bus transport (X-Requested-With, plus the headers message-bus-client adds to polls). A header
  // missing from any route's preflight answer makes the browser drop that route's requests silently.
  const SENT = [
    'content-type',
    'x-requested-with',
    'authorization',
    'x-csrf-token',
    'dont-chunk',
    'x-silence-logger',
  ];

  for (const path of [
    '/presence/update',
    '/presence/get',
    '/message-bus/tab/poll',
  ]) {
    it(`grants every header the addon sends on ${path}`, async () => {
      const res = await request(app)
        .options(path)
        .set('Origin', 'https://app.example.com')
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', SENT.join(','))
        .expect(204);
      assert.equal(
        res.headers['access-control-allow-origin'],
        'https://app.example.com',
      );
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      const granted = String(res.headers['access-control-allow-headers'])
        .split(',')
        .map((h) => h.trim().toLowerCase());
      for (const header of SENT)
        assert.ok(granted.includes(header), `${path} must allow ${header}`);
    });
  }
});
