import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, afterEach, before, describe, it } from 'node:test';

import type { Request, Response } from 'express';
import { chromium, type Browser, type Page } from 'playwright-core';

import { MemoryStore } from '../src/core/memory-store.js';
import { startBusServer, until, type BusServer } from './support/bus-http.js';
import { messageIds } from './support/message-ids.js';

/**
 * The real `message-bus-client` in Chromium, with the browser's own XMLHttpRequest, against this server:
 * the same library the addon ships, in the environment it ships to. The page loads the client as a plain
 * script (its UMD attaches `window.MessageBus`) and gives it a small jQuery-less ajax adapter.
 */

/** The server publishes on a clock stopped at T, so every backlog here is created at T. */
const T = 1_764_000_000_000;
const msgId = messageIds(T);

const CHROMIUM = process.env['CHROME_BIN'] ?? '/usr/bin/chromium';
const clientSource = readFileSync(
  createRequire(import.meta.url).resolve('message-bus-client'),
  'utf8',
);

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>message-bus-client</title>
<script src="/message-bus.js"></script>
<script>
  // The jQuery.ajax subset the client calls: a form-encoded POST, JSON or text to success,
  // error(xhr, 'abort' | 'error'), then complete().
  window.MessageBus.ajax = function (options) {
    var xhr = new XMLHttpRequest();
    var aborted = false;
    xhr.open(options.type, options.url, true);
    xhr.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded; charset=UTF-8');
    Object.keys(options.headers).forEach(function (name) { xhr.setRequestHeader(name, options.headers[name]); });
    if (options.messageBus.chunked) options.messageBus.onProgressListener(xhr);
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      try {
        if (!aborted && xhr.status >= 200 && xhr.status < 300) {
          options.success(options.dataType === 'json' ? JSON.parse(xhr.responseText) : xhr.responseText);
        } else {
          options.error(xhr, aborted ? 'abort' : 'error');
        }
      } finally {
        options.complete();
      }
    };
    var body = new URLSearchParams();
    Object.keys(options.data).forEach(function (key) {
      var value = options.data[key];
      body.append(key, typeof value === 'number' || typeof value === 'string' ? String(value) : '');
    });
    window.sentHeaders.push(options.headers);
    xhr.send(body.toString());
    return { abort: function () { aborted = true; xhr.abort(); } };
  };
  window.sentHeaders = [];
  window.received = [];
  window.follow = function (channel, chunked) {
    window.MessageBus.enableChunkedEncoding = chunked;
    window.MessageBus.subscribe(channel, function (data, globalId, messageId) {
      window.received.push({ data: data, messageId: messageId });
    });
  };
</script>`;

describe('the real message-bus-client in Chromium against this server', () => {
  let browser: Browser;
  let server: BusServer;
  let page: Page;

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  });
  after(async () => {
    await browser.close();
  });
  afterEach(async () => {
    await page.close();
    await server.close();
  });

  async function open(): Promise<void> {
    server = await startBusServer(
      { store: new MemoryStore(), clock: () => T, longPollMs: 5000 },
      (app) => {
        app.get(
          '/',
          (_req: Request, res: Response) => void res.type('html').send(PAGE),
        );
        app.get(
          '/message-bus.js',
          (_req: Request, res: Response) =>
            void res.type('js').send(clientSource),
        );
      },
    );
    page = await browser.newPage();
    await page.goto(`${server.origin}/`);
  }

  for (const mode of ['chunked streaming', 'long polling'] as const) {
    it(`receives messages over ${mode}`, async () => {
      await open();
      const chunked = mode === 'chunked streaming';
      await page.evaluate(
        ([on]) => (globalThis as unknown as TestPage).follow('/chat', on),
        [chunked] as const,
      );
      await until(
        () =>
          server.router.stats().heldPolls === 1 &&
          server.router.stats().listeners === 1,
        'the browser holds a poll',
      );
      assert.equal(server.router.stats().streams, chunked ? 1 : 0);
      await server.router.bus.publish('/chat', { text: 'hello' });
      await page.waitForFunction(
        () => (globalThis as unknown as TestPage).received.length === 1,
        undefined,
        { timeout: 5000 },
      );
      await until(
        () => server.router.stats().listeners === 1,
        'following again',
      );
      await server.router.bus.publish('/chat', { text: 'again' });
      await page.waitForFunction(
        () => (globalThis as unknown as TestPage).received.length === 2,
        undefined,
        { timeout: 5000 },
      );
      assert.deepEqual(
        await page.evaluate(() => (globalThis as unknown as TestPage).received),
        [
          { data: { text: 'hello' }, messageId: msgId(1) },
          { data: { text: 'again' }, messageId: msgId(2) },
        ],
      );
      const headers = await page.evaluate(
        () => (globalThis as unknown as TestPage).sentHeaders,
      );
      assert.ok(
        headers.every((sent) => (sent['Dont-Chunk'] === 'true') === !chunked),
        `Dont-Chunk only when not streaming: ${JSON.stringify(headers)}`,
      );
    });
  }

  it('closing the page releases its poll on the server', async () => {
    await open();
    await page.evaluate(() =>
      (globalThis as unknown as TestPage).follow('/chat', true),
    );
    await until(() => server.router.stats().listeners === 1, 'streaming');
    await page.close();
    await until(() => server.router.stats().heldPolls === 0, 'released');
    assert.equal(server.router.stats().subscribedChannels, 0);
    page = await browser.newPage(); // afterEach closes it
  });
});

/** What the test page defines on its global object (the server's tsconfig has no DOM types). */
interface TestPage {
  follow(channel: string, chunked: boolean): void;
  received: Array<{ data: unknown; messageId: number }>;
  sentHeaders: Array<Record<string, string>>;
}
