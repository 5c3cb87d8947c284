import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { runCli, startCli, type RunningServer } from './support/http-spawn.js';
import { assertNthMessageId } from './support/message-ids.js';
import {
  REDIS_URL,
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
} from './support/redis-fixture.js';

/** The `ember-presence-server` command: flags, startup, serving, and graceful shutdown. */

const dir = mkdtempSync(join(tmpdir(), 'presence-cli-'));
const running: RunningServer[] = [];
after(async () => {
  for (const server of running) await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function start(args: string[]): Promise<RunningServer> {
  const server = await startCli(args);
  running.push(server);
  return server;
}

describe('ember-presence-server', () => {
  it('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await runCli(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /Usage: ember-presence-server/);
    assert.match(stdout, /--redis-url/);
  });

  it('an unknown flag prints the usage on stderr and exits 2', async () => {
    const { code, stderr, stdout } = await runCli(['--nope']);
    assert.equal(code, 2);
    assert.match(stderr, /--nope/);
    assert.match(stderr, /Usage:/);
    assert.equal(stdout, '');
  });

  it('bad flag values exit 2, naming the flag at fault', async () => {
    // The first stderr line is the error; the usage text after it names every flag anyway.
    const firstLine = (stderr: string) => stderr.split('\n')[0] ?? '';
    const cases: Array<[string[], RegExp]> = [
      [['--port', 'eighty'], /--port must be/],
      [['--log-level', 'loud'], /--log-level/],
      [['--redis-url', 'localhost'], /--redis-url must look like/],
      [['serve'], /serve/],
      [['--redis-key-prefix', 'app1:'], /--redis-key-prefix needs --redis-url/],
      [
        ['--redis-url', REDIS_URL, '--redis-key-prefix', 'app{1}:'],
        /--redis-key-prefix must not contain braces/,
      ],
      [['--trust-proxy', 'true'], /--trust-proxy must be a hop count/],
      [
        ['--max-held-polls', '0'],
        /--max-held-polls must be a positive integer/,
      ],
      [
        ['--webhook-url', 'https://example.com/hook'],
        /--webhook-url needs --webhook-secret/,
      ],
      [
        ['--webhook-url', 'example.com', '--webhook-secret', 'x'.repeat(32)],
        /--webhook-\*: webhook URL "example.com" is not a URL/,
      ],
      [
        ['--webhook-url', 'https://example.com/', '--webhook-secret', 'short'],
        /at least 16 characters/,
      ],
      [['--event-lease-ms', '0'], /--event-lease-ms must be a positive/],
      [
        ['--max-held-polls-per-peer', 'many'],
        /--max-held-polls-per-peer must be a positive integer/,
      ],
      [
        ['--max-followed-channels-per-peer', '0'],
        /--max-followed-channels-per-peer must be a positive integer/,
      ],
    ];
    for (const [args, error] of cases) {
      const { code, stderr } = await runCli(args);
      assert.equal(code, 2, args.join(' '));
      assert.match(firstLine(stderr), error, args.join(' '));
    }
  });

  it('SIGTERM during an update lets it finish (200) before the store closes, and exits 0', async () => {
    const config = join(dir, 'slow-config.mjs');
    // A channel whose config lookup takes 800 ms: the update is in flight when SIGTERM arrives.
    writeFileSync(
      config,
      "export default (presence) => presence.registerPrefix('slow', async () => {\n" +
        '  await new Promise((resolve) => setTimeout(resolve, 800));\n' +
        '  return { public: true };\n' +
        '});\n',
    );
    const server = await start(['--demo', '--config', config]);
    const login = await fetch(`${server.url}/presence/demo-login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: server.url },
      body: JSON.stringify({ username: 'ann' }),
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const update = fetch(`${server.url}/presence/update`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Origin: server.url,
        Cookie: cookie,
      },
      body: 'client_id=tab&present_channels[]=/slow/1',
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.child.kill('SIGTERM');
    const res = await update;
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { '/slow/1': true });
    assert.equal(await server.exited, 0);
  });

  it('answers oversized headers (431) and malformed HTTP (400) with the JSON error shape', async () => {
    const server = await start(['--port', '0']);
    const { port } = new URL(server.url);
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () =>
          socket.end(request),
        );
        let answer = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (answer += chunk));
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
        socket.setTimeout(5_000, () => reject(new Error('no answer in 5 s')));
      });

    const big = await raw(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    assert.match(big, /^HTTP\/1\.1 431 /);
    assert.match(big, /Content-Type: application\/json/);
    const bigBody = JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)) as {
      error_type: string;
    };
    assert.equal(bigBody.error_type, 'headers_too_large');

    const bad = await raw('NOT HTTP AT ALL\r\n\r\n');
    assert.match(bad, /^HTTP\/1\.1 400 /);
    const badBody = JSON.parse(bad.slice(bad.indexOf('\r\n\r\n') + 4)) as {
      error_type: string;
    };
    assert.equal(badBody.error_type, 'invalid_parameters');
  });

  it('--redis-key-prefix: every key the server writes carries the prefix', async () => {
    const prefix = randomKeyPrefix();
    const redis = connectTestRedis();
    try {
      const server = await start([
        '--redis-url',
        REDIS_URL,
        '--redis-key-prefix',
        prefix,
        '--demo',
      ]);
      const state = await fetch(
        `${server.url}/presence/get?channels[]=/site/online`,
      );
      assert.equal(state.status, 200);
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      const keys = await redis.keys(`${prefix}*`);
      assert.ok(
        keys.length > 0,
        'the cached config is stored under the prefix',
      );
    } finally {
      await deleteKeys(redis, `${prefix}*`);
      redis.disconnect();
    }
  });

  it('a --config module without a default function fails to start with a message naming the fix', async () => {
    const file = join(dir, 'bad-config.mjs');
    writeFileSync(file, 'export const x = 1;\n');
    const { code, stderr } = await runCli(['--port', '0', '--config', file]);
    assert.equal(code, 1);
    assert.match(stderr, /must default-export a function/);
  });

  it('--demo serves the demo channels and login, answers /healthz, and exits 0 on SIGTERM with a poll held', async () => {
    const server = await start(['--demo']);
    assert.ok(
      server.lines.some((l) => /single process/.test(l)),
      'says the memory store is single-process',
    );
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });

    const state = await fetch(
      `${server.url}/presence/get?channels[]=/site/online&channels[]=/team/1`,
    );
    assert.deepEqual(await state.json(), {
      '/site/online': { users: [], count: 0, last_message_id: null },
      '/team/1': null,
    });

    const login = await fetch(`${server.url}/presence/demo-login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: server.url },
      body: JSON.stringify({ username: 'ann' }),
    });
    assert.equal(login.status, 200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const entered = { from: Date.now(), to: 0 };
    const update = await fetch(`${server.url}/presence/update`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Origin: server.url,
        Cookie: cookie,
      },
      body: 'client_id=cli-tab&present_channels[]=/site/online&present_channels[]=/team/2',
    });
    assert.deepEqual(await update.json(), {
      '/site/online': true,
      '/team/2': false,
    });
    entered.to = Date.now();
    // The server runs on the real clock: ann's enter is the first message of a backlog it created.
    const online = (await (
      await fetch(`${server.url}/presence/get?channels[]=/site/online`)
    ).json()) as Record<string, { last_message_id: number | null }>;
    const enterId = assertNthMessageId(
      online['/site/online']?.last_message_id,
      1,
      entered,
      "the id of ann's enter",
    );

    // A streamed poll held at shutdown is ended, and the process exits 0. Its headers arrive as soon as it
    // is held (the stream's first chunk), so no sleeping is needed to know it is held.
    const poll = await fetch(`${server.url}/message-bus/cli-poller/poll`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ '/presence/site/online': enterId }),
    });
    assert.equal(poll.status, 200);
    const started = Date.now();
    const [code, body] = await Promise.all([server.stop(), poll.text()]);
    assert.equal(code, 0);
    assert.match(body, /^\[\]\r\n\|\r\n/);
    assert.ok(Date.now() - started < 5000, 'graceful shutdown is quick');
    assert.ok(server.lines.some((l) => l.includes('"msg":"stopped"')));
  });

  for (const flag of ['--max-held-polls', '--max-held-polls-per-peer'])
    it(`${flag}: past the cap a poll is answered at once instead of held`, async () => {
      const server = await start(['--demo', flag, '1']);
      const poll = (clientId: string, headers: Record<string, string>) =>
        fetch(`${server.url}/message-bus/${clientId}/poll`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...headers },
          body: JSON.stringify({ '/presence/site/online': null }),
          signal: AbortSignal.timeout(5000),
        });
      // A streamed poll's headers arrive once it is held: the one slot is taken.
      const held = await poll('cli-first', {});
      assert.equal(held.status, 200);
      const second = await poll('cli-second', { 'Dont-Chunk': 'true' });
      assert.equal(second.status, 200);
      assert.deepEqual(await second.json(), [], 'answered at once, not held');
      await held.body?.cancel();
    });

  it('--redis-url: runs on Redis, answers /healthz, closes the connection and exits 0 on SIGINT', async () => {
    const server = await start([
      '--redis-url',
      process.env['REDIS_URL'] || 'redis://127.0.0.1:6379',
    ]);
    assert.ok(server.lines.some((l) => l.includes('"store":"redis"')));
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    server.child.kill('SIGINT');
    assert.equal(await server.exited, 0);
  });

  it('--config, --jwt-secret and --static: the documented production setup', async () => {
    const config = join(dir, 'config.mjs');
    writeFileSync(
      config,
      "export default (presence) => { presence.registerPrefix('chat', (name) => ({ allowedGroupIds: [5] })); };\n",
    );
    const site = join(dir, 'dist');
    mkdirSync(site, { recursive: true });
    writeFileSync(
      join(site, 'index.html'),
      '<!doctype html><title>app shell</title>',
    );
    const secret = 'cli-test-secret-0123456789-0123456789';
    const server = await start([
      '--config',
      config,
      '--jwt-secret',
      secret,
      '--static',
      site,
    ]);

    const token = await new SignJWT({ sub: '5', username: 'eve', groups: [5] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    const update = await fetch(`${server.url}/presence/update`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({
        client_id: 'jwt-tab',
        present_channels: ['/chat/1'],
      }),
    });
    assert.deepEqual(await update.json(), { '/chat/1': true });

    const shell = await fetch(`${server.url}/some/client/route`, {
      headers: { Accept: 'text/html' },
    });
    assert.equal(shell.status, 200);
    assert.match(await shell.text(), /app shell/);
    const api404 = await fetch(`${server.url}/presence/unknown`, {
      headers: { Accept: 'text/html' },
    });
    assert.equal(api404.status, 404);
    assert.equal(
      ((await api404.json()) as { error_type: string }).error_type,
      'not_found',
    );
    assert.equal(await server.stop(), 0);
  });
});
