import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import request from 'supertest';

import { createApp, silentLogger } from '../src/index.js';
import { firstMessageIdBase } from '../src/core/bus-messages.js';
import type { CurrentUser } from '../src/core/types.js';
import { backends, T } from './core-backends.js';
import {
  decodeChunks,
  hasMessageChunk,
  messageIdShift,
  scenarios,
  type ParityDriver,
  type ParityScenario,
  type ParityUser,
} from '../../tests/parity/scenarios.js';

/**
 * The parity suite on the real server, over HTTP, on every store. The same scenarios run against the
 * test-support fake in the browser (tests/unit/parity-test.ts); both must observe exactly `expected`.
 */

const USER_HEADER = 'x-parity-user';

async function runOnRealServer(
  scenario: ParityScenario,
  factory: (typeof backends)[number][1],
): Promise<unknown> {
  const backend = await factory();
  let now = T;
  // Every backlog of a scenario is created at the clock's start (see scenarios.ts).
  const shift = messageIdShift(firstMessageIdBase(T));
  const app = createApp({
    store: backend.store,
    clock: () => now,
    logger: silentLogger,
    currentUser: (req) => {
      const raw = req.get(USER_HEADER);
      return raw ? (JSON.parse(raw) as CurrentUser) : null;
    },
    rateLimit: scenario.setup.rateLimit ?? false,
    configTtlMs: 0,
  });
  for (const prefix of new Set(
    Object.keys(scenario.setup.channels).map((name) => name.split('/')[1]!),
  )) {
    app.presence.registerPrefix(
      prefix,
      (name) => scenario.setup.channels[name] ?? null,
    );
  }
  const as = (user: ParityUser | null) =>
    user ? { [USER_HEADER]: JSON.stringify(user) } : {};

  let listening: Server | undefined;
  const driver: ParityDriver = {
    async get(query, user) {
      const response = await request(app)
        .get(`/presence/get${query ? `?${query}` : ''}`)
        .set(as(user));
      return { status: response.status, body: shift.body(response.body) };
    },
    async update(fields, user) {
      const response = await request(app)
        .post('/presence/update')
        .set(as(user))
        .type('form')
        .send(form(fields));
      return {
        status: response.status,
        body: shift.body(response.body),
        ...(response.status === 429
          ? { retryAfter: response.get('retry-after') ?? null }
          : {}),
      };
    },
    async poll(clientId, positions, user) {
      const response = await request(app)
        .post(`/message-bus/${clientId}/poll?dlp=t`)
        .set(as(user))
        .set('Dont-Chunk', 'true')
        .type('form')
        .send(form(shift.positions(positions)));
      return { status: response.status, body: shift.body(response.body) };
    },
    async heldPoll(clientId, positions, user, meanwhile, options = {}) {
      // A real socket: supertest buffers whole answers, and a stream never ends by itself.
      listening ??= await new Promise<Server>((resolve) => {
        const server: Server = app.listen(0, '127.0.0.1', () =>
          resolve(server),
        );
      });
      const { port } = listening.address() as AddressInfo;
      const headers: Record<string, string> = {
        'Content-Type': 'application/x-www-form-urlencoded',
        ...(as(user) as Record<string, string>),
      };
      if (!options.chunked) headers['Dont-Chunk'] = 'true';
      const abort = new AbortController();
      const before = app.presence.stats().heldPolls;
      const answer = fetch(
        `http://127.0.0.1:${port}/message-bus/${clientId}/poll`,
        {
          method: 'POST',
          headers,
          body: form(shift.positions(positions)),
          signal: abort.signal,
        },
      );
      await waitUntil(() => app.presence.stats().heldPolls > before);
      await meanwhile();
      const response = await answer;
      if (!options.chunked) {
        const body = shift.body(await response.json());
        return { status: response.status, body };
      }
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!hasMessageChunk(text)) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      abort.abort();
      return {
        status: response.status,
        body: decodeChunks(text).map((chunk) => shift.body(chunk)),
      };
    },
    async advance(ms) {
      now += ms;
      await app.presence.sweep();
    },
  };

  try {
    return await scenario.run(driver);
  } finally {
    listening?.closeAllConnections();
    listening?.close();
    await app.presence.close();
    await backend.cleanup();
  }
}

/** Waits (bounded: 5 s) for `condition`, e.g. a poll to be held by the server. */
async function waitUntil(condition: () => boolean): Promise<void> {
  for (let turn = 0; !condition(); turn++) {
    if (turn > 500)
      throw new Error('waited 5 s for the server to hold the poll');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function form(fields: Record<string, string | number | string[]>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    for (const each of Array.isArray(value) ? value : [value]) {
      params.append(key, String(each));
    }
  }
  return params.toString();
}

for (const [storeName, factory] of backends) {
  describe(`parity scenarios on the real server (${storeName})`, () => {
    for (const scenario of scenarios) {
      it(scenario.name, async () => {
        assert.deepEqual(
          await runOnRealServer(scenario, factory),
          scenario.expected,
        );
      });
    }
  });
}
