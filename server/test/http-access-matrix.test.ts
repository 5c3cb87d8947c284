import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import {
  allowedUser,
  bodyOf,
  CHANNELS,
  errorOf,
  publicFields,
  groupMember,
  matrixApp,
  outsider,
  SAME_SITE_HEADERS,
} from './support/http-fixtures.js';
import { messageIds } from './support/message-ids.js';
import type { CurrentUser } from '../src/core/types.js';
import { MemoryStore } from '../src/index.js';

/**
 * docs/protocol.md §1 over HTTP: every kind of requester × every kind of channel, for the GET (both forms),
 * the update and message-bus delivery. A channel the requester may not view must look exactly like one
 * that does not exist, and a count-only channel must never reveal who is in it.
 */

type Kind =
  'public' | 'userList' | 'groupList' | 'countOnly' | 'nobody' | 'nonexistent';
const KINDS: Kind[] = [
  'public',
  'userList',
  'groupList',
  'countOnly',
  'nobody',
  'nonexistent',
];

const REQUESTERS: [string, CurrentUser | null][] = [
  ['anonymous', null],
  ['allowed user', allowedUser],
  ['group member', groupMember],
  ['outsider', outsider],
];

function canView(kind: Kind, user: CurrentUser | null): boolean {
  switch (kind) {
    case 'public':
    case 'countOnly':
      return true;
    case 'userList':
      return user?.id === allowedUser.id;
    case 'groupList':
      return user?.groupIds.includes(10) ?? false;
    default:
      return false;
  }
}

/** Who is present in each channel before the matrix runs (the member whose identity must not leak). */
const OCCUPANT: Record<Kind, CurrentUser | null> = {
  public: allowedUser,
  userList: allowedUser,
  groupList: groupMember,
  countOnly: groupMember,
  nobody: allowedUser, // put there through the store: nobody may enter through the API
  nonexistent: null,
};

function headers(user: CurrentUser | null): Record<string, string> {
  return user ? { 'X-Test-User': String(user.id) } : {};
}

/** A fixed clock, so that the ids of the backlogs (all created at NOW) are known exactly. */
const NOW = Date.UTC(2026, 0, 1);
const msgId = messageIds(NOW);
const store = new MemoryStore();
const app = matrixApp({ clock: () => NOW, store });
after(async () => {
  await app.presence.close();
  await store.close();
});

before(async () => {
  for (const kind of KINDS) {
    const occupant = OCCUPANT[kind];
    if (!occupant) continue;
    if (kind === 'nobody') {
      await store.present(
        CHANNELS.nobody,
        occupant,
        'occupant',
        60_000,
        { countOnly: false, audience: null },
        NOW,
      );
    } else {
      await app.presence.present(occupant, CHANNELS[kind], 'occupant');
    }
  }
});

/** The response text with the channel name replaced, to compare two channels byte for byte. */
function neutral(text: string, channel: string): string {
  return text.split(JSON.stringify(channel).slice(1, -1)).join('<channel>');
}

describe('access matrix: GET /presence/get', () => {
  for (const [label, user] of REQUESTERS) {
    for (const kind of KINDS) {
      const visible = canView(kind, user);
      it(`${label} × ${kind}: ${visible ? 'sees the state' : 'gets what a nonexistent channel gets'}`, async () => {
        const name = CHANNELS[kind];
        const batched = await request(app)
          .get(`/presence/get?channels[]=${encodeURIComponent(name)}`)
          .set(headers(user));
        assert.equal(batched.status, 200);
        const legacy = await request(app)
          .get(`/presence/get?channel=${encodeURIComponent(name)}`)
          .set(headers(user));
        if (!visible) {
          assert.deepEqual(batched.body, { [name]: null });
          const missing = await request(app)
            .get(
              `/presence/get?channel=${encodeURIComponent(CHANNELS.nonexistent)}`,
            )
            .set(headers(user));
          assert.equal(legacy.status, 404);
          assert.equal(
            legacy.text,
            missing.text,
            'forbidden and nonexistent are byte-for-byte identical',
          );
          assert.deepEqual(
            legacy.headers['content-type'],
            missing.headers['content-type'],
          );
          return;
        }
        assert.equal(legacy.status, 200);
        assert.deepEqual(
          bodyOf<Record<string, unknown>>(batched)[name],
          legacy.body,
        );
        const state = legacy.body as Record<string, unknown>;
        if (kind === 'countOnly') {
          assert.deepEqual(Object.keys(state).sort(), [
            'count',
            'last_message_id',
          ]);
          assert.equal(state['count'], 1);
          assert.doesNotMatch(
            legacy.text,
            /username|avatar|bob/,
            'count-only never reveals identities',
          );
        } else {
          const occupant = OCCUPANT[kind]!;
          assert.deepEqual(state['users'], [publicFields(occupant)]);
        }
      });
    }
  }
});

describe('access matrix: POST /presence/update', () => {
  for (const [label, user] of REQUESTERS) {
    it(`${label}: ${user ? 'true exactly where it may enter, leaves never fail' : '403 not_logged_in'}`, async () => {
      const names = KINDS.map((kind) => CHANNELS[kind]);
      const res = await request(app)
        .post('/presence/update')
        .set(SAME_SITE_HEADERS)
        .set(headers(user))
        .send({ client_id: `matrix-${label}`, present_channels: names });
      if (!user) {
        assert.equal(res.status, 403);
        assert.equal(errorOf(res).error_type, 'not_logged_in');
        return;
      }
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body,
        Object.fromEntries(
          KINDS.map((kind) => [CHANNELS[kind], canView(kind, user)]),
        ),
      );
      await request(app)
        .post('/presence/update')
        .set(SAME_SITE_HEADERS)
        .set(headers(user))
        .send({ client_id: `matrix-${label}`, leave_channels: names })
        .expect(200, {});
    });
  }
});

describe('access matrix: message-bus delivery', () => {
  for (const [label, user] of REQUESTERS) {
    for (const kind of KINDS) {
      const visible = canView(kind, user);
      it(`${label} × ${kind}: ${visible ? 'receives the change' : 'learns nothing'}`, async () => {
        const bus = `/presence${CHANNELS[kind]}`;
        const poll = (channel: string, position: number) =>
          request(app)
            .post(`/message-bus/poll-${label.replace(/\W/g, '')}/poll?dlp=t`)
            .set(headers(user))
            .set('Dont-Chunk', 'true')
            .send({ [channel]: position, __seq: 1 });
        const whole = await poll(bus, 0);
        const status = await poll(bus, -1);
        assert.equal(whole.status, 200);
        if (!visible) {
          const missingBus = `/presence${CHANNELS.nonexistent}`;
          const wholeMissing = await poll(missingBus, 0);
          const statusMissing = await poll(missingBus, -1);
          assert.equal(
            neutral(whole.text, bus),
            neutral(wholeMissing.text, missingBus),
          );
          assert.equal(
            neutral(status.text, bus),
            neutral(statusMissing.text, missingBus),
          );
          assert.doesNotMatch(
            whole.text,
            /entering_users|count_delta|username/,
          );
          return;
        }
        const messages = whole.body as {
          channel: string;
          data: Record<string, unknown>;
          message_id: number;
        }[];
        // The first message is the occupant's enter (the update tests above may have added more).
        assert.ok(messages.length >= 1);
        assert.equal(messages[0]!.channel, bus);
        assert.equal(messages[0]!.message_id, msgId(1));
        if (kind === 'countOnly') {
          assert.deepEqual(messages[0]!.data, { count_delta: 1 });
          assert.doesNotMatch(
            whole.text + status.text,
            /username|entering_users|avatar|"id"/,
          );
        } else {
          const occupant = OCCUPANT[kind]!;
          assert.deepEqual(messages[0]!.data, {
            entering_users: [publicFields(occupant)],
          });
        }
      });
    }
  }
});
