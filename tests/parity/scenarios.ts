/**
 * One scenario suite, two servers: every scenario here runs against the test-support fake in the browser
 * (tests/unit/parity-test.ts) and against the real Node server over HTTP on the memory and Redis stores
 * (server/test/parity.test.ts), and must observe the same results byte for byte. That is what keeps the
 * fake honest for the apps that test with it.
 *
 * This file runs in both worlds: no imports, plain data and async functions only.
 *
 * Message ids here are relative, as if every channel's ids started at 1: `n` is the n-th message id of a
 * channel. A real backlog created at time t numbers its messages from `firstMessageIdBase(t) + 1`
 * (server/src/core/bus-messages.ts), and the two runners' clocks start at different times; so each driver
 * shifts ids by the base of its clock's start at the boundary, with {@link messageIdShift}: poll positions
 * on the way in, `message_id`, `last_message_id` and `/__status` ids on the way out. The shift is by a
 * known constant, so the comparison stays exact (relative id 1 matches base + 1 and nothing else). Every
 * backlog a scenario uses must therefore be created before its first `advance`.
 */

/** A user as both drivers understand it. */
export interface ParityUser {
  id: number;
  username: string;
  name: string;
  avatar_template: string;
  groupIds: number[];
}

/** A channel config as a prefix callback returns it. */
export interface ParityConfig {
  public?: boolean;
  allowedUserIds?: number[];
  allowedGroupIds?: number[];
  countOnly?: boolean;
  timeout?: number;
  maxUsers?: number;
  maxUsersShown?: number;
}

/** An HTTP answer, reduced to what clients observe. */
export interface ParityResponse {
  status: number;
  body: unknown;
  retryAfter?: string | null;
}

/**
 * What a scenario can do to a server. Message ids in and out are relative (see the top of this file): the
 * driver shifts them with {@link messageIdShift}.
 */
export interface ParityDriver {
  /** `GET /presence/get?<query>` as `user` (`null`: anonymous). */
  get(query: string, user: ParityUser | null): Promise<ParityResponse>;
  /** `POST /presence/update` with a form body, as `user`. */
  update(
    fields: Record<string, string | string[]>,
    user: ParityUser | null,
  ): Promise<ParityResponse>;
  /** `POST /message-bus/<clientId>/poll?dlp=t` (answer at once) with a form body, as `user`. */
  poll(
    clientId: string,
    positions: Record<string, string | number>,
    user: ParityUser | null,
  ): Promise<ParityResponse>;
  /**
   * A long poll: starts `POST /message-bus/<clientId>/poll` (no `dlp`) as `user`, waits until the server
   * holds it, runs `meanwhile`, and gives the answer: the JSON array, or with `chunked`, the chunks the
   * server streamed up to the first one that carries messages, each decoded with {@link decodeChunks}.
   */
  heldPoll(
    clientId: string,
    positions: Record<string, string | number>,
    user: ParityUser | null,
    meanwhile: () => Promise<unknown>,
    options?: { chunked?: boolean },
  ): Promise<ParityResponse>;
  /** Moves the server clock forward and runs one expiry sweep. */
  advance(ms: number): Promise<void>;
}

/**
 * A chunked poll answer as the list of its chunks: each chunk is a JSON array followed by `\r\n|\r\n`,
 * with any `\r\n|\r\n` inside the JSON escaped as `\r\n||\r\n` (docs/protocol.md §6).
 */
export function decodeChunks(text: string): unknown[] {
  return text
    .split(/\r\n\|\r\n/)
    .filter((chunk) => chunk.trim() !== '')
    .map(
      (chunk) =>
        JSON.parse(chunk.replace(/\r\n\|\|\r\n/g, '\r\n|\r\n')) as unknown,
    );
}

/** Whether streamed `text` already holds a whole chunk that carries messages (the answer is complete). */
export function hasMessageChunk(text: string): boolean {
  const end = text.lastIndexOf('\r\n|\r\n');
  if (end < 0) return false;
  return decodeChunks(text.slice(0, end)).some(
    (chunk) => Array.isArray(chunk) && chunk.length > 0,
  );
}

/** An id (a number above 0) shifted by `by`; 0, -1 and anything else that is not an id stay. */
const shiftId = (value: unknown, by: number): unknown =>
  typeof value === 'number' && value > 0 ? value + by : value;

/** `body` with every `message_id`, `last_message_id` and `/__status` id in it shifted by `by`. */
function shiftIds(body: unknown, by: number): unknown {
  if (Array.isArray(body)) return body.map((item) => shiftIds(item, by));
  if (typeof body !== 'object' || body === null) return body;
  const object = body as Record<string, unknown>;
  const status = object['channel'] === '/__status';
  const shifted: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) {
    if (key === 'message_id' || key === 'last_message_id') {
      shifted[key] = shiftId(value, by);
    } else if (status && key === 'data' && typeof value === 'object') {
      shifted[key] = Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([c, id]) => [
          c,
          shiftId(id, by),
        ]),
      );
    } else {
      shifted[key] = shiftIds(value, by);
    }
  }
  return shifted;
}

/**
 * The translation between a scenario's relative message ids and a server's, for a server whose every
 * backlog has the base `base` (`firstMessageIdBase(<the clock's start>)`).
 */
export function messageIdShift(base: number): {
  /** Poll positions as the server takes them: ids (> 0) plus `base`; 0, -1 and -N stay. */
  positions(
    positions: Record<string, string | number>,
  ): Record<string, string | number>;
  /** A response body with its ids minus `base`. */
  body(body: unknown): unknown;
} {
  return {
    positions: (positions) =>
      Object.fromEntries(
        Object.entries(positions).map(([channel, id]) => [
          channel,
          shiftId(id, base) as string | number,
        ]),
      ),
    body: (body) => shiftIds(body, -base),
  };
}

/** Server-side setup of a scenario. */
export interface ParitySetup {
  /** Exact channel configs; every other channel does not exist. */
  channels: Record<string, ParityConfig>;
  /** The update rate limit; off unless a scenario is about it. */
  rateLimit?: { limit: number; windowMs: number };
}

export interface ParityScenario {
  name: string;
  setup: ParitySetup;
  /** Returns the observations; both servers must produce exactly `expected`. */
  run(driver: ParityDriver): Promise<unknown>;
  expected: unknown;
}

const user = (
  id: number,
  username: string,
  groupIds: number[] = [],
): ParityUser => ({
  id,
  username,
  name: username.toUpperCase(),
  avatar_template: `/a/${username}/{size}.png`,
  groupIds,
});

/** What state and messages carry of a user: exactly these four fields, never the groups. */
const pub = (u: ParityUser) => ({
  id: u.id,
  username: u.username,
  name: u.name,
  avatar_template: u.avatar_template,
});

export const ann = user(1, 'ann', [10]);
export const bob = user(2, 'bob', [10]);
export const eve = user(3, 'eve', [99]);

const update = (
  clientId: string,
  present: string[] = [],
  leave: string[] = [],
): Record<string, string | string[]> => ({
  client_id: clientId,
  ...(present.length ? { 'present_channels[]': present } : {}),
  ...(leave.length ? { 'leave_channels[]': leave } : {}),
});

/** Presence messages without their global ids, which are the store's own business. */
const messages = (response: ParityResponse) =>
  (response.body as Array<Record<string, unknown>>).map((m) => ({
    channel: m['channel'],
    message_id: m['message_id'],
    data: m['data'],
  }));

const online = { '/site/online': { public: true, allowedGroupIds: [10] } };

export const scenarios: ParityScenario[] = [
  {
    name: 'a user entering is in the state with the message id of their entry',
    setup: { channels: online },
    async run(d) {
      const entered = await d.update(update('a1', ['/site/online']), ann);
      const state = await d.get('channels[]=/site/online', null);
      return { entered, state };
    },
    expected: {
      entered: { status: 200, body: { '/site/online': true } },
      state: {
        status: 200,
        body: {
          '/site/online': { users: [pub(ann)], count: 1, last_message_id: 1 },
        },
      },
    },
  },
  {
    name: 'two tabs of one user are one member: one enter, and one leave on the last tab',
    setup: { channels: online },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      await d.update(update('a2', ['/site/online']), ann);
      const afterTwo = await d.get('channels[]=/site/online', null);
      await d.update(update('a1', [], ['/site/online']), ann);
      const afterOne = await d.get('channels[]=/site/online', null);
      await d.update(update('a2', [], ['/site/online']), ann);
      const bus = await d.poll('watcher', { '/presence/site/online': 0 }, bob);
      return {
        afterTwo: afterTwo.body,
        afterOne: afterOne.body,
        messages: messages(bus),
      };
    },
    expected: {
      afterTwo: {
        '/site/online': { users: [pub(ann)], count: 1, last_message_id: 1 },
      },
      afterOne: {
        '/site/online': { users: [pub(ann)], count: 1, last_message_id: 1 },
      },
      messages: [
        {
          channel: '/presence/site/online',
          message_id: 1,
          data: { entering_users: [pub(ann)] },
        },
        {
          channel: '/presence/site/online',
          message_id: 2,
          data: { leaving_user_ids: [1] },
        },
      ],
    },
  },
  {
    name: 'a heartbeat publishes nothing; leaving an unknown client or twice is a no-op',
    setup: { channels: online },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      await d.update(update('a1', ['/site/online']), ann);
      const unknown = await d.update(update('nope', [], ['/site/online']), bob);
      await d.update(update('a1', [], ['/site/online']), ann);
      await d.update(update('a1', [], ['/site/online']), ann);
      const bus = await d.poll('watcher', { '/presence/site/online': 0 }, bob);
      return { unknown, ids: messages(bus).map((m) => m.message_id) };
    },
    expected: { unknown: { status: 200, body: {} }, ids: [1, 2] },
  },
  {
    name: 'count-only channels reveal counts, never identities',
    setup: {
      channels: {
        '/stats/visitors': {
          public: true,
          allowedGroupIds: [10],
          countOnly: true,
        },
      },
    },
    async run(d) {
      await d.update(update('a1', ['/stats/visitors']), ann);
      await d.update(update('b1', ['/stats/visitors']), bob);
      await d.update(update('a1', [], ['/stats/visitors']), ann);
      const state = await d.get('channels[]=/stats/visitors', eve);
      const bus = await d.poll(
        'watcher',
        { '/presence/stats/visitors': 0 },
        eve,
      );
      return { state: state.body, messages: messages(bus) };
    },
    expected: {
      state: { '/stats/visitors': { count: 1, last_message_id: 3 } },
      messages: [
        {
          channel: '/presence/stats/visitors',
          message_id: 1,
          data: { count_delta: 1 },
        },
        {
          channel: '/presence/stats/visitors',
          message_id: 2,
          data: { count_delta: 1 },
        },
        {
          channel: '/presence/stats/visitors',
          message_id: 3,
          data: { count_delta: -1 },
        },
      ],
    },
  },
  {
    name: 'a forbidden channel is indistinguishable from a nonexistent one',
    setup: { channels: { '/team/1': { allowedUserIds: [1, 2] } } },
    async run(d) {
      await d.update(update('a1', ['/team/1']), ann);
      return {
        batched: await d.get('channels[]=/team/1&channels[]=/team/404', eve),
        legacyForbidden: await d.get('channel=/team/1', eve),
        legacyMissing: await d.get('channel=/team/404', eve),
        enter: await d.update(update('e1', ['/team/1', '/team/404']), eve),
        member: (await d.get('channels[]=/team/1', bob)).body,
      };
    },
    expected: {
      batched: { status: 200, body: { '/team/1': null, '/team/404': null } },
      legacyForbidden: {
        status: 404,
        body: {
          errors: ['The requested channel was not found.'],
          error_type: 'not_found',
        },
      },
      legacyMissing: {
        status: 404,
        body: {
          errors: ['The requested channel was not found.'],
          error_type: 'not_found',
        },
      },
      enter: { status: 200, body: { '/team/1': false, '/team/404': false } },
      member: {
        '/team/1': { users: [pub(ann)], count: 1, last_message_id: 1 },
      },
    },
  },
  {
    name: 'anonymous visitors may view public channels but never enter',
    setup: { channels: { '/site/online': { public: true } } },
    async run(d) {
      return {
        view: await d.get('channels[]=/site/online', null),
        enter: await d.update(update('x1', ['/site/online']), null),
      };
    },
    expected: {
      view: {
        status: 200,
        body: {
          '/site/online': { users: [], count: 0, last_message_id: null },
        },
      },
      enter: {
        status: 403,
        body: {
          errors: ['You need to be logged in to do that.'],
          error_type: 'not_logged_in',
        },
      },
    },
  },
  {
    name: 'any signed-in user may enter a public channel; a viewer-less channel nobody may',
    setup: { channels: { '/site/news': { public: true }, '/site/closed': {} } },
    async run(d) {
      return {
        enter: (
          await d.update(update('e1', ['/site/news', '/site/closed']), eve)
        ).body,
        closed: (await d.get('channels[]=/site/closed', eve)).body,
      };
    },
    expected: {
      enter: { '/site/news': true, '/site/closed': false },
      closed: { '/site/closed': null },
    },
  },
  {
    name: 'a client that stops heart-beating expires, and one sweep announces every expired user at once',
    setup: {
      channels: {
        '/site/online': { public: true, allowedGroupIds: [10], timeout: 30 },
      },
    },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      await d.update(update('b1', ['/site/online']), bob);
      await d.advance(20_000);
      const early = (await d.get('channels[]=/site/online', null)).body;
      await d.advance(15_000);
      const late = (await d.get('channels[]=/site/online', null)).body;
      const bus = await d.poll('watcher', { '/presence/site/online': 2 }, null);
      return { early, late, messages: messages(bus) };
    },
    expected: {
      early: {
        '/site/online': {
          users: [pub(ann), pub(bob)],
          count: 2,
          last_message_id: 2,
        },
      },
      late: { '/site/online': { users: [], count: 0, last_message_id: 3 } },
      messages: [
        {
          channel: '/presence/site/online',
          message_id: 3,
          data: { leaving_user_ids: [1, 2] },
        },
      ],
    },
  },
  {
    name: 'a heartbeat keeps a client present past its first timeout',
    setup: {
      channels: {
        '/site/online': { public: true, allowedGroupIds: [10], timeout: 30 },
      },
    },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      await d.advance(20_000);
      await d.update(update('a1', ['/site/online']), ann);
      await d.advance(20_000);
      return (await d.get('channels[]=/site/online', null)).body;
    },
    expected: {
      '/site/online': { users: [pub(ann)], count: 1, last_message_id: 1 },
    },
  },
  {
    name: 'a full channel refuses a new user with the reason "full", never a present member or their tabs',
    setup: {
      channels: { '/room/1': { public: true, maxUsers: 2 } },
    },
    async run(d) {
      await d.update(update('a1', ['/room/1']), ann);
      await d.update(update('b1', ['/room/1']), bob);
      const refused = await d.update(update('e1', ['/room/1']), eve);
      const heartbeat = await d.update(update('a1', ['/room/1']), ann);
      const secondTab = await d.update(update('a2', ['/room/1']), ann);
      const full = (await d.get('channels[]=/room/1', null)).body;
      await d.update(update('b1', [], ['/room/1']), bob);
      const afterLeave = await d.update(update('e1', ['/room/1']), eve);
      const bus = await d.poll('watcher', { '/presence/room/1': 0 }, null);
      return {
        refused,
        heartbeat: heartbeat.body,
        secondTab: secondTab.body,
        full,
        afterLeave: afterLeave.body,
        ids: messages(bus).map((m) => m.message_id),
      };
    },
    expected: {
      refused: {
        status: 200,
        body: { '/room/1': false, _reasons: { '/room/1': 'full' } },
      },
      heartbeat: { '/room/1': true },
      secondTab: { '/room/1': true },
      full: {
        '/room/1': {
          users: [pub(ann), pub(bob)],
          count: 2,
          last_message_id: 2,
        },
      },
      afterLeave: { '/room/1': true },
      ids: [1, 2, 3, 4],
    },
  },
  {
    name: "a channel with maxUsersShown lists the first users, counts everyone, and lists the next in a leaver's place",
    setup: {
      channels: { '/room/big': { public: true, maxUsersShown: 2 } },
    },
    async run(d) {
      await d.update(update('a1', ['/room/big']), ann);
      await d.update(update('b1', ['/room/big']), bob);
      await d.update(update('e1', ['/room/big']), eve);
      const full = (await d.get('channels[]=/room/big', null)).body;
      await d.update(update('a1', [], ['/room/big']), ann);
      const after = (await d.get('channels[]=/room/big', null)).body;
      const bus = await d.poll('watcher', { '/presence/room/big': 0 }, null);
      return { full, after, messages: messages(bus) };
    },
    expected: {
      full: {
        '/room/big': {
          users: [pub(ann), pub(bob)],
          count: 3,
          last_message_id: 3,
        },
      },
      after: {
        '/room/big': {
          users: [pub(bob), pub(eve)],
          count: 2,
          last_message_id: 4,
        },
      },
      messages: [
        { entering_users: [pub(ann)] },
        { entering_users: [pub(bob)] },
        { count_delta: 1 },
        {
          entering_users: [pub(eve)],
          leaving_user_ids: [1],
          count_delta: -1,
        },
      ].map((data, i) => ({
        channel: '/presence/room/big',
        message_id: i + 1,
        data,
      })),
    },
  },
  {
    name: 'a client that missed messages reads them from the backlog after its last id',
    setup: { channels: online },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      await d.update(update('b1', ['/site/online']), bob);
      await d.update(update('a1', [], ['/site/online']), ann);
      const after1 = await d.poll('c', { '/presence/site/online': 1 }, null);
      const lastTwo = await d.poll('c', { '/presence/site/online': -3 }, null);
      return {
        after1: messages(after1).map((m) => m.message_id),
        lastTwo: messages(lastTwo).map((m) => m.message_id),
      };
    },
    expected: { after1: [2, 3], lastTwo: [2, 3] },
  },
  {
    name: 'asking with -1 or beyond the end answers with the status of the channel',
    setup: { channels: online },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      const fresh = await d.poll('c', { '/presence/site/online': -1 }, null);
      const beyond = await d.poll('c', { '/presence/site/online': 42 }, null);
      const strip = (r: ParityResponse) =>
        (r.body as Array<Record<string, unknown>>).map((m) => ({
          channel: m['channel'],
          data: m['data'],
        }));
      return { fresh: strip(fresh), beyond: strip(beyond) };
    },
    expected: {
      fresh: [{ channel: '/__status', data: { '/presence/site/online': 1 } }],
      beyond: [{ channel: '/__status', data: { '/presence/site/online': 1 } }],
    },
  },
  {
    name: 'messages of a restricted channel reach its members only',
    setup: { channels: { '/topic/1/reply': { allowedGroupIds: [10] } } },
    async run(d) {
      await d.update(update('a1', ['/topic/1/reply']), ann);
      const member = await d.poll('b', { '/presence/topic/1/reply': 0 }, bob);
      const outsider = await d.poll('e', { '/presence/topic/1/reply': 0 }, eve);
      const anonymous = await d.poll(
        'x',
        { '/presence/topic/1/reply': 0 },
        null,
      );
      return {
        member: messages(member),
        outsider: outsider.body,
        anonymous: anonymous.body,
      };
    },
    expected: {
      member: [
        {
          channel: '/presence/topic/1/reply',
          message_id: 1,
          data: { entering_users: [pub(ann)] },
        },
      ],
      outsider: [],
      anonymous: [],
    },
  },
  {
    name: 'GET validates its input',
    setup: { channels: online },
    async run(d) {
      const many = Array.from(
        { length: 51 },
        (_, i) => `channels[]=/site/c${i}`,
      ).join('&');
      return {
        missing: (await d.get('', null)).status,
        tooMany: (await d.get(many, null)).status,
        duplicates: await d.get(
          'channels[]=/site/online&channels[]=/site/online',
          null,
        ),
        invalidName: (await d.get('channels[]=nope', null)).body,
      };
    },
    expected: {
      missing: 400,
      tooMany: 400,
      duplicates: {
        status: 200,
        body: {
          '/site/online': { users: [], count: 0, last_message_id: null },
        },
      },
      invalidName: { nope: null },
    },
  },
  {
    name: 'update validates its input',
    setup: { channels: online },
    async run(d) {
      const fifty = Array.from({ length: 51 }, (_, i) => `/site/c${i}`);
      return {
        noClient: (
          await d.update({ 'present_channels[]': ['/site/online'] }, ann)
        ).status,
        longClient: (
          await d.update(update('x'.repeat(65), ['/site/online']), ann)
        ).status,
        blankClient: (await d.update(update('   ', ['/site/online']), ann))
          .status,
        tooMany: (await d.update(update('a1', fifty), ann)).status,
        state: (await d.get('channels[]=/site/online', null)).body,
      };
    },
    expected: {
      noClient: 400,
      longClient: 400,
      blankClient: 400,
      tooMany: 400,
      state: { '/site/online': { users: [], count: 0, last_message_id: null } },
    },
  },
  {
    name: 'too many updates are rate limited with the time to wait',
    setup: { channels: online, rateLimit: { limit: 3, windowMs: 10_000 } },
    async run(d) {
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++)
        statuses.push(
          (await d.update(update('a1', ['/site/online']), ann)).status,
        );
      const limited = await d.update(update('a1', ['/site/online']), ann);
      const other = await d.update(update('b1', ['/site/online']), bob);
      await d.advance(10_000);
      const later = await d.update(update('a1', ['/site/online']), ann);
      return { statuses, limited, other: other.status, later: later.status };
    },
    expected: {
      statuses: [200, 200, 200],
      limited: {
        status: 429,
        retryAfter: '10',
        body: {
          errors: [
            "You've performed this action too many times. Please wait 10 seconds before trying again.",
          ],
          error_type: 'rate_limit',
          extras: { wait_seconds: 10 },
        },
      },
      other: 200,
      later: 200,
    },
  },
  {
    name: 'all presents are applied before the leaves of one update',
    setup: { channels: online },
    async run(d) {
      await d.update(update('a1', ['/site/online'], ['/site/online']), ann);
      return (await d.get('channels[]=/site/online', null)).body;
    },
    expected: { '/site/online': { users: [], count: 0, last_message_id: 2 } },
  },
  {
    name: 'a held poll is answered by the next message; a streamed one sends [] at once, then the message',
    setup: { channels: online },
    async run(d) {
      await d.update(update('a1', ['/site/online']), ann);
      const held = await d.heldPoll(
        'watcher',
        { '/presence/site/online': 1 },
        bob,
        () => d.update(update('b1', ['/site/online']), bob),
      );
      const streamed = await d.heldPoll(
        'watcher',
        { '/presence/site/online': 2 },
        bob,
        () => d.update(update('b1', [], ['/site/online']), bob),
        { chunked: true },
      );
      return {
        held: { status: held.status, messages: messages(held) },
        streamed: {
          status: streamed.status,
          chunks: (streamed.body as unknown[]).map((chunk) =>
            messages({ status: streamed.status, body: chunk }),
          ),
        },
      };
    },
    expected: {
      held: {
        status: 200,
        messages: [
          {
            channel: '/presence/site/online',
            message_id: 2,
            data: { entering_users: [pub(bob)] },
          },
        ],
      },
      streamed: {
        status: 200,
        chunks: [
          [],
          [
            {
              channel: '/presence/site/online',
              message_id: 3,
              data: { leaving_user_ids: [bob.id] },
            },
          ],
        ],
      },
    },
  },
];
