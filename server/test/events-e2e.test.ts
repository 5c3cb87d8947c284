import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { SignJWT } from 'jose';

import {
  createReceiver,
  type PresenceWebhookEvent,
} from '../../docs/examples/webhook-receiver.mjs';
import { startCli, type RunningServer } from './support/http-spawn.js';
import {
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
  REDIS_URL,
} from './support/redis-fixture.js';

/**
 * Issue 18's acceptance scenario, with the installed CLI: two server processes on one Redis, a webhook
 * receiver that answers 500 for its first 10 s, and a SIGKILL of the process delivering in the middle of
 * its retries. The receiver must see every join and leave (sweeper leaves included) with a valid
 * signature, each event id at least once, no event under two ids, and each channel's events in order.
 */

const JWT_SECRET = 'events-e2e-jwt-secret-0123456789-abcdef';
const WEBHOOK_SECRET = 'events-e2e-webhook-secret-0123456789';
const FAILING_MS = 10_000;
const DEADLINE_MS = 60_000;

interface Received {
  /** Events handed to the app, once per id (the receiver skips ids it has handled). */
  events: PresenceWebhookEvent[];
  /** Answers by status. */
  statuses: Record<number, number>;
}

/** The README's receiver (docs/examples/webhook-receiver.mjs), failing for its first FAILING_MS. */
function startReceiver(): Promise<{
  url: string;
  received: Received;
  close(): void;
}> {
  const received: Received = { events: [], statuses: {} };
  const failUntil = Date.now() + FAILING_MS;
  const server = createReceiver({
    secret: WEBHOOK_SECRET,
    onEvent: (event) => {
      if (Date.now() < failUntil) throw new Error('the database is down');
      received.events.push(event);
    },
  });
  server.on('request', (_req, res) =>
    res.on('finish', () => {
      received.statuses[res.statusCode] =
        (received.statuses[res.statusCode] ?? 0) + 1;
    }),
  );
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/presence-events`,
        received,
        close: () => server.close(),
      });
    });
  });
}

async function token(userId: number): Promise<string> {
  return new SignJWT({ sub: String(userId), username: `user${userId}` })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

async function update(
  server: RunningServer,
  userId: number,
  body: { present_channels?: string[]; leave_channels?: string[] },
): Promise<void> {
  const response = await fetch(`${server.url}/presence/update`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Authorization: `Bearer ${await token(userId)}`,
    },
    body: JSON.stringify({ client_id: `tab-${userId}`, ...body }),
  });
  assert.equal(response.status, 200, await response.text());
}

describe('webhooks across two processes, a SIGKILL and a failing receiver', () => {
  const prefix = randomKeyPrefix();
  const redis = connectTestRedis();
  const dir = mkdtempSync(join(tmpdir(), 'presence-events-'));
  const servers: RunningServer[] = [];
  after(async () => {
    for (const server of servers) server.child.kill('SIGKILL');
    await Promise.all(servers.map((server) => server.exited));
    rmSync(dir, { recursive: true, force: true });
    await deleteKeys(redis, `${prefix}*`);
    await redis.quit();
  });

  it('delivers every join and leave exactly once by id, signed, in channel order', async () => {
    const config = join(dir, 'config.mjs');
    writeFileSync(
      config,
      'export default (presence) => {\n' +
        "  presence.registerPrefix('room', () => ({ public: true }));\n" +
        "  presence.registerPrefix('vanish', () => ({ public: true, timeout: 1 }));\n" +
        '};\n',
    );
    const receiver = await startReceiver();
    const args = [
      '--redis-url',
      REDIS_URL,
      '--redis-key-prefix',
      prefix,
      '--config',
      config,
      '--jwt-secret',
      JWT_SECRET,
      '--webhook-url',
      receiver.url,
      '--webhook-secret',
      WEBHOOK_SECRET,
      '--event-lease-ms',
      '2000',
    ];
    const a = await startCli(args);
    servers.push(a);
    const b = await startCli(args);
    servers.push(b);

    // Through both processes: users 1-3 in /room/1, 4-6 in /room/2, 7-8 vanish (1 s timeout, swept).
    for (let id = 1; id <= 6; id++)
      await update(id % 2 ? a : b, id, {
        present_channels: [`/room/${id <= 3 ? 1 : 2}`],
      });
    await update(a, 7, { present_channels: ['/vanish/1'] });
    await update(b, 8, { present_channels: ['/vanish/1'] });
    await update(b, 1, { leave_channels: ['/room/1'] });

    // The receiver fails for 10 s: whoever delivers is retrying. Kill the first process mid-delivery.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.ok(
      receiver.received.statuses[500]! > 0,
      'a delivery was attempted and failed',
    );
    // The process being killed is the one delivering: it took every shard when it started, alone.
    const shardsOf = (server: RunningServer): number[] | undefined => {
      const lines = server.lines.filter((line) =>
        line.includes('"delivering presence events"'),
      );
      const last = lines.at(-1);
      return last
        ? (JSON.parse(last) as { shards: number[] }).shards
        : undefined;
    };
    assert.equal(
      shardsOf(a)?.length,
      16,
      'the first process delivers every shard',
    );
    assert.equal(shardsOf(b), undefined, 'the second one waits');
    a.child.kill('SIGKILL');
    await a.exited;
    await update(b, 9, { present_channels: ['/room/3'] });
    await update(b, 5, { leave_channels: ['/room/2'] });

    const expected = [
      'channel_occupied:1@/room/1',
      'member_added:1@/room/1',
      'member_added:2@/room/1',
      'member_added:3@/room/1',
      'member_removed:1@/room/1',
      'channel_occupied:4@/room/2',
      'member_added:4@/room/2',
      'member_added:5@/room/2',
      'member_added:6@/room/2',
      'member_removed:5@/room/2',
      'channel_occupied:7@/vanish/1',
      'member_added:7@/vanish/1',
      'member_added:8@/vanish/1',
      'member_removed:7@/vanish/1',
      'member_removed:8@/vanish/1',
      'channel_vacated:8@/vanish/1',
      'channel_occupied:9@/room/3',
      'member_added:9@/room/3',
    ];
    const deadline = Date.now() + DEADLINE_MS;
    while (
      receiver.received.events.length < expected.length &&
      Date.now() < deadline
    )
      await new Promise((resolve) => setTimeout(resolve, 200));
    // A little longer: an extra event (one change under two ids) would show here.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    receiver.close();

    assert.equal(
      shardsOf(b)?.length,
      16,
      'the second process took over every shard',
    );
    const { events, statuses } = receiver.received;
    assert.deepEqual(
      events.map((e) => `${e.name}:${e.user_id}@${e.channel}`).sort(),
      expected.slice().sort(),
      'every event, once by id',
    );
    assert.equal(statuses[401], undefined, 'every POST was signed');
    assert.ok(statuses[200]! > 0);
    // Per channel, events were handed over in the order they happened (their sequence numbers).
    const seqs = new Map<string, number[]>();
    for (const event of events) {
      const list = seqs.get(event.channel) ?? [];
      list.push(Number(event.id.slice(0, event.id.indexOf('@'))));
      seqs.set(event.channel, list);
    }
    for (const [channel, list] of seqs)
      assert.deepEqual(
        list,
        list.slice().sort((x, y) => x - y),
        `order of ${channel}`,
      );
  });
});
