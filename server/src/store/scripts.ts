import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import type { Cluster, Redis } from 'ioredis';

import { GLOBAL_IDS_PER_MS } from '../core/bus-messages.js';

/**
 * The RedisStore's Lua scripts (server/lua/): reading and assembling them, defining them on a
 * connection, and running them with their reply checked against the shape the script documents, so a
 * script that answers something else (an edited script, a proxy in between, a module of another
 * version) fails with an error naming the script instead of corrupting a result.
 */

/**
 * A present whose channel's recorded due time is this far in the past re-requests indexing: the sweep
 * should have visited it long ago, so the index write after an earlier call was lost (a process died
 * between the script and the ZADD). Several sweep intervals (5 s by default) of slack.
 */
const OVERDUE_REINDEX_MS = 30_000;

/** The shape a script reply must have: its description, and what is wrong with a value (or undefined). */
interface ReplyShape<T> {
  readonly expected: string;
  problem(value: unknown): string | undefined;
  /** Never set: carries `T` for {@link ScriptReply}. */
  readonly type?: T;
}

function shape<T>(
  expected: string,
  matches: (value: unknown) => boolean,
): ReplyShape<T> {
  return {
    expected,
    problem: (value) =>
      matches(value) ? undefined : `${preview(value)} is not ${expected}`,
  };
}

const integer = shape<number>(
  'an integer',
  (value) => typeof value === 'number' && Number.isSafeInteger(value),
);
const flag = shape<0 | 1>('0 or 1', (value) => value === 0 || value === 1);
const text = shape<string>('a string', (value) => typeof value === 'string');
const textOrNil = shape<string | null>(
  'a string or nil',
  (value) => value === null || typeof value === 'string',
);

/** An array of `items` in order, then any number of `rest` (none when `rest` is absent). */
function tuple<T extends unknown[], R = never>(
  items: { [K in keyof T]: ReplyShape<T[K]> },
  rest?: ReplyShape<R>,
): ReplyShape<[...T, ...R[]]> {
  const names = items.map((item) => item.expected);
  if (rest) names.push(`...${rest.expected}`);
  const expected = `an array [${names.join(', ')}]`;
  return {
    expected,
    problem(value) {
      if (!Array.isArray(value)) return `${preview(value)} is not ${expected}`;
      if (value.length < items.length || (!rest && value.length > items.length))
        return `it has ${value.length} elements, not ${expected}`;
      for (let i = 0; i < value.length; i++) {
        const problem = (items[i] ?? rest)!.problem(value[i]);
        if (problem !== undefined) return `element ${i}: ${problem}`;
      }
      return undefined;
    },
  };
}

/** A short rendering of a reply value for an error message (a state reply may hold 10,000 users). */
function preview(value: unknown): string {
  if (value === undefined) return 'undefined';
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    return `a ${typeof value}`;
  }
  return json.length > 80 ? `${json.slice(0, 80)}…` : json;
}

interface ScriptSpec {
  command: string;
  file: string;
  keys: number;
  readOnly?: boolean;
  /** The script has a `-- @constants` line, where the store's constants are written at load. */
  constants?: boolean;
  /** What the script answers (see the `Returns` of its header comment). */
  reply: ReplyShape<unknown>;
}

/** One Lua file per atomic operation (server/lua/), registered once per connection with defineCommand. */
const SCRIPTS = {
  present: {
    command: 'emberPresencePresent',
    file: 'presence-present.lua',
    keys: 9,
    constants: true,
    // changed, message JSON, indexAt, full, newClient, firstClient, events recorded
    reply: tuple<
      [0 | 1, string | null, string | null, 0 | 1, 0 | 1, 0 | 1, number]
    >([flag, textOrNil, textOrNil, flag, flag, flag, integer]),
  },
  heartbeat: {
    command: 'emberPresenceHeartbeat',
    file: 'presence-heartbeat.lua',
    keys: 3,
    constants: true,
    // 1: done; 0: run present instead
    reply: flag,
  },
  leave: {
    command: 'emberPresenceLeave',
    file: 'presence-leave.lua',
    keys: 9,
    constants: true,
    // changed, message JSON, removed, lastClient, events recorded
    reply: tuple<[0 | 1, string | null, 0 | 1, 0 | 1, number]>([
      flag,
      textOrNil,
      flag,
      flag,
      integer,
    ]),
  },
  sweep: {
    command: 'emberPresenceSweep',
    file: 'presence-sweep.lua',
    keys: 9,
    constants: true,
    // expired clients, next due time, message JSON, oldest expiry removed, lastClient, events recorded
    reply: tuple<
      [number, string | null, string | null, string | null, 0 | 1, number]
    >([integer, textOrNil, textOrNil, textOrNil, flag, integer]),
  },
  state: {
    command: 'emberPresenceState',
    file: 'presence-state.lua',
    keys: 4,
    readOnly: true,
    // count, last message id, state version, then the user ids (none when the version was the cached one)
    reply: tuple<[number, number, string | null], string>(
      [integer, integer, textOrNil],
      text,
    ),
  },
  publish: {
    command: 'emberPresencePublish',
    file: 'bus-publish.lua',
    keys: 3,
    constants: true,
    // the message JSON
    reply: text,
  },
  rescore: {
    command: 'emberPresenceRescore',
    file: 'sweep-index-rescore.lua',
    keys: 1,
    reply: flag,
  },
  lease: {
    command: 'emberPresenceLease',
    file: 'events-lease.lua',
    keys: 1,
    reply: flag,
  },
  hit: {
    command: 'emberPresenceHit',
    file: 'rate-limit-hit.lua',
    keys: 1,
    // count, window start
    reply: tuple<[number, string]>([integer, text]),
  },
  claim: {
    command: 'emberPresenceClaim',
    file: 'user-channels-claim.lua',
    keys: 1,
    // the refused names
    reply: tuple<[], string>([], text),
  },
  admit: {
    command: 'emberPresenceAdmit',
    file: 'user-update-admit.lua',
    keys: 2,
    // count, window start, then the refused names
    reply: tuple<[number, string], string>([integer, text], text),
  },
} satisfies Record<string, ScriptSpec>;

export type ScriptName = keyof typeof SCRIPTS;

/** What script `name` answers once its reply is checked. */
export type ScriptReply<N extends ScriptName> =
  (typeof SCRIPTS)[N]['reply'] extends ReplyShape<infer T> ? T : never;

/** `reply` if it has the shape script `name` answers; otherwise an Error naming the script and the fault. */
export function checkReply<N extends ScriptName>(
  name: N,
  reply: unknown,
): ScriptReply<N> {
  const spec: ScriptSpec = SCRIPTS[name];
  const problem = spec.reply.problem(reply);
  if (problem !== undefined) {
    throw new Error(
      `server/lua/${spec.file} answered an unexpected reply: ${problem} (expected ${spec.reply.expected})`,
    );
  }
  return reply as ScriptReply<N>;
}

/** Works from server/src/store (tsx) and from the compiled server/dist/store alike. */
const LUA_DIR = new URL('../../lua/', import.meta.url);

let luaSources: Map<ScriptName, string> | undefined;

/** Reads the scripts once per process, splicing `-- @include <name>` lines with server/lua/includes/<name>.lua. */
function loadLuaSources(): Map<ScriptName, string> {
  if (luaSources) return luaSources;
  const includes = new Map<string, string>();
  const include = (name: string): string => {
    let source = includes.get(name);
    if (source === undefined) {
      source = readFileSync(new URL(`includes/${name}.lua`, LUA_DIR), 'utf8');
      includes.set(name, source);
    }
    return source;
  };
  try {
    luaSources = readLuaSources(include);
  } catch (error) {
    throw new Error(
      `RedisStore could not read its Lua scripts in ${LUA_DIR.pathname}: server/lua/ must be installed ` +
        `next to server/src or server/dist (${String(error)})`,
    );
  }
  return luaSources;
}

function readLuaSources(
  include: (name: string) => string,
): Map<ScriptName, string> {
  return new Map(
    (Object.keys(SCRIPTS) as ScriptName[]).map((name) => {
      const source = readFileSync(new URL(SCRIPTS[name].file, LUA_DIR), 'utf8');
      return [
        name,
        source.replace(/^-- @include ([\w-]+)[ \t]*$/gm, (_, file: string) =>
          include(file),
        ),
      ];
    }),
  );
}

/**
 * How often a heartbeat refreshes a presence channel's TTLs (presence-present.lua): a quarter of the
 * shorter TTL, at most a minute. Keys then live at least 3/4 of their TTL after the last activity (a
 * minute less than their TTL with the defaults of 24 hours and 7 days), and an ordinary heartbeat skips
 * six PEXPIREs.
 */
export function ttlRefreshMs(
  constants: Pick<ScriptConstants, 'channelTtlMs' | 'backlogTtlMs'>,
): number {
  return Math.min(
    60_000,
    Math.floor(Math.min(constants.channelTtlMs, constants.backlogTtlMs) / 4),
  );
}

/**
 * A presence channel's join/leave events wait in its outbox at most this long (the outbox's TTL after its
 * last event) and at most {@link EVENTS_CAP} of them: only a deployment whose event consumers are all gone
 * for a day (or stuck behind a dead receiver) reaches either.
 */
export const EVENTS_TTL_MS = 24 * 60 * 60 * 1000;
/** See {@link EVENTS_TTL_MS}. */
export const EVENTS_CAP = 100_000;

/** The per-store constants the scripts read as Lua locals (see {@link constantsLine}). */
export interface ScriptConstants {
  backlogSize: number;
  channelTtlMs: number;
  backlogTtlMs: number;
  emptyChannelTtlMs: number;
}

/**
 * The Lua lines that replace `-- @constants`: the store's retention settings, built into the script
 * source once instead of being encoded and parsed as ARGV on every call. Every value is a safe integer
 * (checked by `retention`), so it prints exactly.
 */
function constantsLine(constants: ScriptConstants): string {
  const numbers = {
    BACKLOG_SIZE: constants.backlogSize,
    CHANNEL_TTL_MS: constants.channelTtlMs,
    BACKLOG_TTL_MS: constants.backlogTtlMs,
    IDS_PER_MS: GLOBAL_IDS_PER_MS,
    OVERDUE_MS: OVERDUE_REINDEX_MS,
    EMPTY_CHANNEL_TTL_MS: constants.emptyChannelTtlMs,
    TTL_REFRESH_MS: ttlRefreshMs(constants),
    EVENTS_TTL_MS,
    EVENTS_CAP,
  };
  // The same values as the strings redis.call arguments need (see includes/append-message.lua), so no
  // call formats them again.
  const texts = {
    CHANNEL_TTL_TEXT: numbers.CHANNEL_TTL_MS,
    BACKLOG_TTL_TEXT: numbers.BACKLOG_TTL_MS,
    BACKLOG_TRIM_STOP: -(numbers.BACKLOG_SIZE + 1),
    EMPTY_CHANNEL_TTL_TEXT: numbers.EMPTY_CHANNEL_TTL_MS,
    EVENTS_TTL_TEXT: numbers.EVENTS_TTL_MS,
    EVENTS_TRIM_STOP: -(numbers.EVENTS_CAP + 1),
  };
  const local = (values: Record<string, number>, quote: boolean): string =>
    `local ${Object.keys(values).join(', ')} = ${Object.values(values)
      .map((value) => (quote ? `'${value}'` : String(value)))
      .join(', ')}`;
  return `${local(numbers, false)}\n${local(texts, true)}`;
}

/** Where a script wants the per-store constants. */
const CONSTANTS_LINE = /^-- @constants[ \t]*$/m;

/** A script assembled for one store's constants, ready to define on a connection. */
interface PreparedScript {
  /** The command name: the script's base name and a hash of its source. */
  command: string;
  lua: string;
  spec: ScriptSpec;
}

/** The scripts with a store's constants written in: everything that can fail, before any connection exists. */
export type PreparedScripts = ReadonlyMap<ScriptName, PreparedScript>;

/** Reads (once per process) and assembles the scripts for a store with `constants`. */
export function prepareScripts(constants: ScriptConstants): PreparedScripts {
  const sources = loadLuaSources();
  const line = constantsLine(constants);
  const prepared = new Map<ScriptName, PreparedScript>();
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    const spec: ScriptSpec = SCRIPTS[name];
    const source = sources.get(name)!;
    if (spec.constants && !CONSTANTS_LINE.test(source)) {
      // A script without the line would fail on its first call (undefined global), so fail here.
      throw new Error(
        `server/lua/${spec.file} has no "-- @constants" line for the store's constants`,
      );
    }
    const lua = spec.constants
      ? source.replace(CONSTANTS_LINE, () => line)
      : source;
    const command = `${spec.command}_${createHash('sha1').update(lua).digest('hex').slice(0, 16)}`;
    prepared.set(name, { command, lua, spec });
  }
  return prepared;
}

type ScriptCommand = (...args: (string | number)[]) => Promise<unknown>;

/** Runs script `name` with `keys` then `args` and resolves to its checked reply. */
export type RunScript = <N extends ScriptName>(
  name: N,
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<ScriptReply<N>>;

/**
 * Defines the prepared scripts on `redis` (ioredis runs them with EVALSHA and falls back to EVAL on
 * NOSCRIPT) and returns how to run them. Stores with different retention settings (or two copies of this
 * module) may share a connection: each distinct script source is its own command, named after its hash,
 * defined once per connection.
 */
export function defineScripts(
  redis: Redis | Cluster,
  prepared: PreparedScripts,
): RunScript {
  const defined = redis as unknown as Record<string, unknown>;
  const commands = new Map<ScriptName, ScriptCommand>();
  for (const [name, { command, lua, spec }] of prepared) {
    if (typeof defined[command] !== 'function') {
      redis.defineCommand(command, {
        lua,
        numberOfKeys: spec.keys,
        readOnly: spec.readOnly ?? false,
      });
    }
    commands.set(name, defined[command] as ScriptCommand);
  }
  return (name, keys, args) =>
    commands
      .get(name)!
      .apply(redis, [...keys, ...args])
      .then((reply) => checkReply(name, reply));
}
