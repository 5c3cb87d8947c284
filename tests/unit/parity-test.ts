import { module, test } from 'qunit';
import { FakeClock } from 'ember-presence/test-support';
import { FakePresenceServer } from 'ember-presence/test-support/-private/fake-server';
import { firstMessageIdBase } from 'ember-presence/test-support/-private/core';
import {
  decodeChunks,
  messageIdShift,
  scenarios,
  type ParityDriver,
  type ParityScenario,
  type ParityUser,
} from 'dummy/tests/parity/scenarios';

/**
 * The parity suite on the test-support fake, in the browser, through pretender. The same scenarios run
 * against the real server over HTTP on the memory and Redis stores (server/test/parity.test.ts); both must
 * observe exactly `expected`.
 */
async function runOnFake(scenario: ParityScenario): Promise<unknown> {
  const clock = new FakeClock();
  // Every backlog of a scenario is created at the clock's start (see scenarios.ts).
  const shift = messageIdShift(firstMessageIdBase(clock.now()));
  const server = new FakePresenceServer(clock, {
    channels: scenario.setup.channels,
    rateLimit: scenario.setup.rateLimit ?? false,
  });
  const as = (user: ParityUser | null) => {
    server.currentUser = user;
  };
  const form = (fields: Record<string, string | number | string[]>) => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(fields)) {
      for (const each of Array.isArray(value) ? value : [value]) {
        params.append(key, String(each));
      }
    }
    return params;
  };
  const read = async (response: Response) => ({
    status: response.status,
    body: shift.body(await response.json()),
  });

  const driver: ParityDriver = {
    async get(query, user) {
      as(user);
      return read(await fetch(`/presence/get${query ? `?${query}` : ''}`));
    },
    async update(fields, user) {
      as(user);
      const response = await fetch('/presence/update', {
        method: 'POST',
        body: form(fields),
      });
      const result = await read(response);
      return response.status === 429
        ? { ...result, retryAfter: response.headers.get('retry-after') }
        : result;
    },
    async poll(clientId, positions, user) {
      as(user);
      return read(
        await fetch(`/message-bus/${clientId}/poll?dlp=t`, {
          method: 'POST',
          headers: { 'Dont-Chunk': 'true' },
          body: form(shift.positions(positions)),
        }),
      );
    },
    async heldPoll(clientId, positions, user, meanwhile, options = {}) {
      as(user);
      const before = server.heldPolls;
      const answer = fetch(`/message-bus/${clientId}/poll`, {
        method: 'POST',
        headers: options.chunked ? {} : { 'Dont-Chunk': 'true' },
        body: form(shift.positions(positions)),
      });
      // Pretender answers asynchronously: let the request reach the handler and be held.
      for (let turn = 0; server.heldPolls <= before; turn++) {
        if (turn > 200) throw new Error('the fake never held the poll');
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      await meanwhile();
      const response = await answer;
      const text = await response.text();
      return {
        status: response.status,
        body: options.chunked
          ? decodeChunks(text).map((chunk) => shift.body(chunk))
          : shift.body(JSON.parse(text)),
      };
    },
    async advance(ms) {
      await clock.advance(ms);
      await server.core.sweep();
    },
  };

  try {
    return await scenario.run(driver);
  } finally {
    await server.shutdown();
  }
}

module('Unit | test-support | parity with the real server', function () {
  for (const scenario of scenarios) {
    test(scenario.name, async function (assert) {
      assert.deepEqual(await runOnFake(scenario), scenario.expected);
    });
  }
});
