/**
 * Takes the README's screenshots of the demo: builds it (or reuses `E2E_DIST`), serves it with the real
 * CLI on the memory store, signs a few people in and photographs what one of them sees.
 *
 *   node --import tsx e2e/screenshots.ts     → docs/demo-online.png, docs/demo-replying.png
 *
 * `E2E_BASE_URL=http://127.0.0.1:4200` photographs a running demo instead (e.g. `npm start`), and
 * `E2E_SCREENSHOT_DIR=<dir>` writes elsewhere than docs/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchBrowser, signIn, type Person } from './support/browser.js';
import { buildDemo } from './support/build.js';
import { REPO_ROOT } from './support/paths.js';
import { startServer } from './support/server.js';

const WAIT_MS = 5000;
/** Small enough for a README, wide enough for the header to fit on one line. */
const VIEWPORT = { width: 880, height: 440 };

async function main(): Promise<void> {
  const out = process.env['E2E_SCREENSHOT_DIR'] || join(REPO_ROOT, 'docs');
  mkdirSync(out, { recursive: true });
  const running = process.env['E2E_BASE_URL']?.replace(/\/+$/, '');
  const demo = running ? undefined : await buildDemo();
  const server = demo
    ? await startServer({ staticDir: demo.dir }).catch((err: unknown) => {
        demo.dispose();
        throw err;
      })
    : undefined;
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser();
    const base = running ?? server!.url;
    const open = async (username: string, path: string): Promise<Person> => {
      const someone = await signIn(browser!, base, username);
      await someone.page.setViewportSize(VIEWPORT);
      await someone.page.goto(`${base}${path}`);
      return someone;
    };

    const ann = await open('ann', '/topic/1');
    await open('cyd', '/');
    const bob = await open('bob', '/');
    await everyoneOnline(bob);
    await bob.page.waitForFunction(
      `document.querySelector('[data-test-visitors-count]')?.textContent === '3'`,
      undefined,
      { timeout: WAIT_MS },
    );
    await bob.page.waitForSelector('[data-test-team-link="1"]', {
      timeout: WAIT_MS,
    });
    await settleImages(bob);
    await bob.page.screenshot({ path: join(out, 'demo-online.png') });

    await bob.page.setViewportSize({ ...VIEWPORT, height: 480 });
    await bob.page.goto(`${base}/topic/1`);
    await ann.page.click('[data-test-open-composer]');
    await ann.page
      .locator('[data-test-composer-text]')
      .pressSequentially('I think', { delay: 20 });
    await bob.page.click('[data-test-open-composer]');
    await bob.page
      .locator('[data-test-composer-text]')
      .fill('Welcome! Try typing in the other window.');
    await bob.page.waitForSelector('[data-test-replying]', {
      timeout: WAIT_MS,
    });
    await everyoneOnline(bob);
    await settleImages(bob);
    await bob.page.screenshot({ path: join(out, 'demo-replying.png') });
    process.stdout.write(
      `wrote ${join(out, 'demo-online.png')} and ${join(out, 'demo-replying.png')}\n`,
    );
  } finally {
    await browser?.close();
    await server?.stop();
    demo?.dispose();
  }
}

/** Waits until Ann, Bob and Cyd are all in "Online now" (a reloaded page enters again). */
async function everyoneOnline(someone: Person): Promise<void> {
  for (const username of ['ann', 'bob', 'cyd']) {
    await someone.page.waitForSelector(
      `[data-test-online-user="${username}"]`,
      {
        timeout: WAIT_MS,
      },
    );
  }
}

/** Waits until every avatar image has loaded, so no screenshot shows a broken image. */
async function settleImages(someone: Person): Promise<void> {
  await someone.page.waitForFunction(
    `[...document.images].every((image) => image.complete)`,
    undefined,
    { timeout: WAIT_MS },
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
