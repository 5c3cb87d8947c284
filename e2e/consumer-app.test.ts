// The README's "Your own app in ten minutes", end to end in Chromium: the consumer Vite app of
// test-apps/vite-app, with the packed addon installed, built the way the README says (once for a presence
// server on another origin, once for a dev proxy), against the packed `ember-presence-server` bin on the
// memory store, with a stand-in for the app's backend that signs tokens with the README's own
// `server/presence-token.mjs`. Two people in two browser contexts.
//
// Run by scripts/test-apps.mjs after the app's own tests, with APP_DIR = the scratch copy of the app (its
// node_modules holds the packed addon):
//   APP_DIR=/tmp/…/vite-app node --import tsx --test e2e/consumer-app.test.ts
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { SignJWT } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser } from './support/browser.js';
import { runBounded } from './support/build.js';
import { startListening, type RunningServer } from './support/server.js';

const APP_DIR = process.env['APP_DIR'];
if (!APP_DIR || !existsSync(join(APP_DIR, 'node_modules/ember-presence'))) {
  throw new Error(
    'APP_DIR must be a copy of test-apps/vite-app with the packed addon installed (scripts/test-apps.mjs sets it)',
  );
}
const appDir = APP_DIR;
const BIN = join(appDir, 'node_modules/.bin');
const SECRET = randomBytes(32).toString('hex');
const BUILD_TIMEOUT_MS = 5 * 60_000;
/** Presence changes must reach the other person within this (the bar). */
const LIVE_MS = 2_000;
/**
 * After the server comes back: message-bus-client retries a failed poll within 15 s (its
 * `callbackInterval`), then one resync and one re-enter; bounded well above that.
 */
const RECOVERY_MS = 45_000;

const T0 = Date.now();
const took = (since: number): string => `${Date.now() - since} ms`;

let presencePort: number;
let presence: RunningServer | undefined;
let backend: Server | undefined;
let preview: ChildProcess | undefined;
let browser: Browser | undefined;

before(async () => {
  const [appPort, previewPort] = [await freePort(), await freePort()];
  presencePort = await freePort();
  const appOrigin = `http://127.0.0.1:${appPort}`;
  const presenceUrl = `http://127.0.0.1:${presencePort}`;
  // Two builds of the same app, as the README says: one for a presence server on its own origin, one for a
  // presence server behind the dev proxy (baseUrl '/'). One after the other: Embroider keeps the app's
  // config in a cache folder that two builds at once would share.
  await runBounded(
    'vite build (cross-origin)',
    join(BIN, 'vite'),
    ['build', '--outDir', 'dist-cross-origin'],
    {
      cwd: appDir,
      env: { PRESENCE_URL: `${presenceUrl}/` },
      timeoutMs: BUILD_TIMEOUT_MS,
    },
  );
  await runBounded(
    'vite build (same origin)',
    join(BIN, 'vite'),
    ['build', '--outDir', 'dist-same-origin'],
    { cwd: appDir, timeoutMs: BUILD_TIMEOUT_MS },
  );
  console.log(`# both builds done after ${took(T0)}`);
  presence = await startPresence(appOrigin);
  backend = await startBackend(appPort, join(appDir, 'dist-cross-origin'));
  preview = await startPreview(previewPort, {
    PRESENCE_SERVER: presenceUrl,
    APP_BACKEND: appOrigin,
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await presence?.stop();
  await new Promise((done) => (backend ? backend.close(done) : done(null)));
  if (preview && preview.exitCode === null) {
    process.kill(-preview.pid!, 'SIGKILL');
  }
});

describe('a fresh app, built from the README', () => {
  it('across origins: two people see each other within 2 s, and leave on sign-out', async () => {
    const origin = `http://127.0.0.1:${backendPort()}`;
    const ann = await person(origin);
    await signIn(ann, 'ann');
    await waitForList(ann, ['ann'], LIVE_MS * 5, 'ann sees herself');

    const bob = await person(origin);
    const bobSignedIn = Date.now();
    await signIn(bob, 'bob');
    await waitForList(ann, ['ann', 'bob'], LIVE_MS, 'ann sees bob arrive');
    console.log(`# ann saw bob ${took(bobSignedIn)} after he signed in`);
    await waitForList(bob, ['ann', 'bob'], LIVE_MS, 'bob sees ann');

    const left = Date.now();
    await bob.click('[data-test-sign-out]');
    await waitForList(ann, ['ann'], LIVE_MS, 'ann sees bob leave');
    console.log(`# ann saw bob leave ${took(left)} after he signed out`);
    await bob.close();
    await ann.close();
  });

  it('across origins: the list recovers by itself after the server was away for 10 s', async () => {
    const origin = `http://127.0.0.1:${backendPort()}`;
    const ann = await person(origin);
    const bob = await person(origin);
    await signIn(ann, 'ann');
    await signIn(bob, 'bob');
    await waitForList(ann, ['ann', 'bob'], LIVE_MS * 5, 'both present');

    await presence!.stop();
    await delay(10_000);
    const back = Date.now();
    presence = await startPresence(`http://127.0.0.1:${backendPort()}`);
    // The restarted server (memory store) knows nobody. Someone new arrives; each open tab's message bus
    // reconnects by itself, sees that the new store's message ids jumped, refetches, finds its own user
    // missing and enters again at once: every list is whole and live without a reload.
    const carol = await person(`http://127.0.0.1:${backendPort()}`);
    await signIn(carol, 'carol');
    const everyone = ['ann', 'bob', 'carol'];
    await waitForList(ann, everyone, RECOVERY_MS, 'ann, after the restart');
    await waitForList(bob, everyone, RECOVERY_MS, 'bob, after the restart');
    await waitForList(carol, everyone, RECOVERY_MS, 'carol, after the restart');
    console.log(`# every list whole again ${took(back)} after the restart`);

    const left = Date.now();
    await bob.click('[data-test-sign-out]');
    await waitForList(
      ann,
      ['ann', 'carol'],
      LIVE_MS,
      'live: ann sees bob leave',
    );
    await waitForList(
      carol,
      ['ann', 'carol'],
      LIVE_MS,
      'live: carol sees bob leave',
    );
    console.log(`# …and live: bob's leave reached ann in ${took(left)}`);
    await carol.close();
    await bob.close();
    await ann.close();
  });

  it('a token the server rejects shows an error that names the reason', async () => {
    const mallory = await person(`http://127.0.0.1:${backendPort()}`);
    await signIn(mallory, 'mallory'); // the stand-in backend signs mallory's token with another secret
    await mallory.waitForSelector('[data-test-presence-error]', {
      timeout: LIVE_MS * 5,
    });
    const text = await mallory.textContent('[data-test-presence-error]');
    assert.match(String(text), /403 not_logged_in \(reason: invalid_token\)/);
    assert.match(
      String(text),
      new RegExp(`http://127\\.0\\.0\\.1:${presencePort}/presence/update`),
    );
    assert.match(
      presence!.output(),
      /rejected a presence token.*"reason":"invalid_token"/,
      'the server logged the rejected token',
    );
    await mallory.close();
  });

  it('through the dev proxy: two people see each other within 2 s', async () => {
    const origin = `http://127.0.0.1:${previewPortOf(preview!)}`;
    const carol = await person(origin);
    await signIn(carol, 'carol');
    await waitForList(carol, ['carol'], LIVE_MS * 5, 'carol sees herself');
    const dave = await person(origin);
    const daveSignedIn = Date.now();
    await signIn(dave, 'dave');
    await waitForList(carol, ['carol', 'dave'], LIVE_MS, 'carol sees dave');
    console.log(
      `# (proxy) carol saw dave ${took(daveSignedIn)} after he signed in`,
    );
    await waitForList(dave, ['carol', 'dave'], LIVE_MS, 'dave sees carol');
    await dave.close();
    await carol.close();
  });
});

// --- the pieces -------------------------------------------------------------------------------------

/**
 * A new person: own browser context (own cookies and storage), the app loaded. `close()` fails the test
 * if the page had an uncaught error or the browser refused a request for CORS.
 */
async function person(origin: string): Promise<Page> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error' && /CORS|blocked/i.test(message.text()))
      problems.push(message.text());
  });
  await page.goto(origin);
  await page.waitForSelector('[data-test-online-count]');
  const close = page.close.bind(page);
  page.close = async (options) => {
    await close(options);
    await context.close();
    assert.deepEqual(problems, [], 'no page errors, no CORS refusals');
  };
  return page;
}

async function signIn(page: Page, username: string): Promise<void> {
  await page.fill('[data-test-username]', username);
  await page.click('[data-test-sign-in]');
  await page.waitForSelector('[data-test-me]');
}

/** Waits until the page's who-is-online list is exactly `usernames` (any order). */
async function waitForList(
  page: Page,
  usernames: string[],
  timeoutMs: number,
  what: string,
): Promise<void> {
  const expected = [...usernames].sort().join(',');
  try {
    // A string, not a function: the page gets exactly this source (see support/browser.ts).
    await page.waitForFunction(
      `[...document.querySelectorAll('[data-test-online-user]')].map((li) => li.textContent.trim()).sort().join(',') === ${JSON.stringify(expected)}`,
      undefined,
      { timeout: timeoutMs, polling: 50 },
    );
  } catch {
    const seen = await page
      .locator('[data-test-online-user]')
      .allTextContents();
    assert.fail(
      `${what}: expected [${expected}] within ${timeoutMs} ms, the list shows [${seen.join(',')}]\n--- presence server ---\n${presence?.output().slice(-3000)}`,
    );
  }
}

/** The packed `ember-presence-server` bin, as the README runs it, allowing the app's origin. */
function startPresence(appOrigin: string): Promise<RunningServer> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PRESENCE_JWT_SECRET: SECRET,
  };
  delete env['REDIS_URL']; // the README's default: the embedded memory store
  return startListening(
    join(BIN, 'ember-presence-server'),
    [
      '--port',
      String(presencePort),
      '--config',
      'presence.config.mjs',
      '--allowed-origin',
      appOrigin,
    ],
    { cwd: appDir, env, store: 'memory' },
  );
}

/**
 * Stands in for the app's own backend: serves the built app (SPA fallback) and `POST /api/presence-token`,
 * which signs in whoever asks (a real backend checks its session first) with the README's
 * `presenceToken()`. `mallory` gets a token signed with another secret.
 */
async function startBackend(port: number, dist: string): Promise<Server> {
  process.env['PRESENCE_JWT_SECRET'] = SECRET; // read by presence-token.mjs when it loads
  const { presenceToken } = (await import(
    pathToFileURL(join(appDir, 'server/presence-token.mjs')).href
  )) as {
    presenceToken: (user: { id: number; username: string }) => Promise<string>;
  };
  const ids = new Map<string, number>();
  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  });
  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://app');
    if (req.method === 'POST' && url.pathname === '/api/presence-token') {
      const form = new URLSearchParams(await readBody(req));
      const username = form.get('username') ?? '';
      if (!/^[a-z]{1,20}$/.test(username)) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end('{"error":"username: 1-20 lowercase letters"}');
        return;
      }
      if (!ids.has(username)) ids.set(username, ids.size + 1);
      const user = { id: ids.get(username)!, username };
      const token =
        username === 'mallory'
          ? await new SignJWT({ username })
              .setProtectedHeader({ alg: 'HS256' })
              .setSubject(String(user.id))
              .setExpirationTime('1h')
              .sign(new TextEncoder().encode(`not-${SECRET}`))
          : await presenceToken(user);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ...user, token }));
      return;
    }
    const file = normalize(join(dist, url.pathname));
    const isFile =
      file.startsWith(dist) && existsSync(file) && statSync(file).isFile();
    const path = isFile ? file : join(dist, 'index.html');
    res.writeHead(200, {
      'Content-Type':
        CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
    });
    res.end(readFileSync(path));
  }
  await new Promise<void>((done) => server.listen(port, '127.0.0.1', done));
  return server;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 10_000) req.destroy(new Error('body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** `vite preview` of the same-origin build, with the README's dev proxy (vite.config.mjs `server.proxy`). */
function startPreview(
  port: number,
  env: Record<string, string>,
): Promise<ChildProcess> {
  const child = spawn(
    join(BIN, 'vite'),
    [
      'preview',
      '--outDir',
      'dist-same-origin',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--strictPort',
    ],
    {
      cwd: appDir,
      env: { ...process.env, ...env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`vite preview did not start within 30 s\n${output}`));
    }, 30_000);
    const onData = (chunk: Buffer) => {
      // Colours off, and stripped anyway: vite prints the port in bold.
      output += stripVTControlCharacters(chunk.toString());
      if (output.includes(`:${port}/`)) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        previewPorts.set(child, port);
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vite preview exited (${code})\n${output}`));
    });
  });
}

const previewPorts = new Map<ChildProcess, number>();
function previewPortOf(child: ChildProcess): number {
  return previewPorts.get(child)!;
}

function backendPort(): number {
  return (backend!.address() as AddressInfo).port;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
