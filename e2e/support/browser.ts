import {
  chromium,
  type Browser,
  type BrowserContext,
  type Page,
} from 'playwright-core';

/** The system Chromium (Debian's /usr/bin/chromium); override with CHROME_BIN. */
const CHROMIUM = process.env['CHROME_BIN'] || '/usr/bin/chromium';

/** Launches headless Chromium with the flags a root container needs. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

/** One response body the page received, as the page's own code saw it. */
export interface SeenResponse {
  url: string;
  /** The body so far (a streamed message-bus poll grows while it is open). */
  body: string;
}

/** A person in their own browser context (own cookies), signed in through the demo login. */
export interface Person {
  username: string;
  context: BrowserContext;
  page: Page;
  /** Uncaught errors of the page so far. */
  errors: Error[];
  /** Every response body of `presence/…` and `message-bus/…` requests seen by the page so far. */
  seen(): Promise<SeenResponse[]>;
}

/**
 * Records, inside the page, the bodies of the presence and message-bus responses as the app's code
 * receives them (XHR and fetch), including the chunks of a streamed long-poll that has not finished.
 * Plain JavaScript in a string: a function would be shipped through its compiled source, which may
 * reference the TypeScript compiler's helpers that do not exist in the page.
 */
const RECORD_RESPONSES = `(() => {
  const log = [];
  window.__presenceSeen = log;
  const watched = (url) => url.includes('/presence/') || url.includes('/message-bus/');
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    const href = String(url);
    if (watched(href)) {
      const entry = { url: href, body: '' };
      log.push(entry);
      const update = () => {
        try { entry.body = this.responseText; } catch { /* not text */ }
      };
      this.addEventListener('progress', update);
      this.addEventListener('readystatechange', update);
    }
    return open.call(this, method, url, ...rest);
  };
  const originalFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const response = await originalFetch(input, init);
    const href = input instanceof Request ? input.url : new URL(String(input), location.href).href;
    if (watched(href)) {
      const entry = { url: href, body: '' };
      log.push(entry);
      response.clone().text().then((text) => { entry.body = text; }, () => undefined);
    }
    return response;
  };
})();`;

/**
 * A new browser context signed in as `username` on the server at `baseUrl` (the demo login sets its
 * cookie), with one blank page. Nothing is loaded yet: call `page.goto` to measure a page load.
 */
export async function signIn(
  browser: Browser,
  baseUrl: string,
  username: string,
): Promise<Person> {
  const context = await browser.newContext({
    viewport: { width: 960, height: 600 },
  });
  await context.addInitScript({ content: RECORD_RESPONSES });
  const login = await context.request.post(`${baseUrl}/presence/demo-login`, {
    data: { username },
  });
  if (!login.ok()) {
    throw new Error(
      `demo login as ${username} failed: ${login.status()} ${await login.text()}`,
    );
  }
  return withPage(context, username);
}

/** A new browser context with nobody signed in (the demo's user picker). */
export async function anonymous(browser: Browser): Promise<Person> {
  const context = await browser.newContext({
    viewport: { width: 960, height: 600 },
  });
  await context.addInitScript({ content: RECORD_RESPONSES });
  return withPage(context, '');
}

async function withPage(
  context: BrowserContext,
  username: string,
): Promise<Person> {
  const page = await context.newPage();
  const errors: Error[] = [];
  page.on('pageerror', (error) => errors.push(error));
  return {
    username,
    context,
    page,
    errors,
    seen: async () =>
      page.isClosed()
        ? []
        : page.evaluate<SeenResponse[]>('window.__presenceSeen ?? []'),
  };
}

/** A message-bus message as it travels in a poll response. */
export interface WireMessage {
  global_id: number;
  message_id: number;
  channel: string;
  data: unknown;
}

/**
 * The messages in a poll response body: a JSON array, or (streamed) JSON arrays separated by
 * `\r\n|\r\n`. A chunk still being written is ignored.
 */
export function pollMessages(body: string): WireMessage[] {
  const messages: WireMessage[] = [];
  for (const chunk of body.split('\r\n|\r\n')) {
    const text = chunk.replaceAll('\r\n||\r\n', '\r\n|\r\n').trim();
    if (text === '') continue;
    try {
      const parsed = JSON.parse(text) as unknown;
      if (Array.isArray(parsed)) messages.push(...(parsed as WireMessage[]));
    } catch {
      // an incomplete last chunk
    }
  }
  return messages;
}

/** What a page received from the presence server, parsed. */
export interface PresenceTraffic {
  /** Every `[channel, state]` of every `GET /presence/get` answer (`null` = not found). */
  states: [string, Record<string, unknown> | null][];
  /** Every message of every message-bus poll answer. */
  messages: WireMessage[];
}

/** Parses what `someone`'s page has received so far from `/presence/get` and the message bus. */
export async function traffic(someone: Person): Promise<PresenceTraffic> {
  const result: PresenceTraffic = { states: [], messages: [] };
  for (const { url, body } of await someone.seen()) {
    if (url.includes('/presence/get') && body !== '') {
      const answer = JSON.parse(body) as Record<
        string,
        Record<string, unknown> | null
      >;
      result.states.push(...Object.entries(answer));
    } else if (url.includes('/message-bus/')) {
      result.messages.push(...pollMessages(body));
    }
  }
  return result;
}
