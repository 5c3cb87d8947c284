/**
 * A tiny structured logger: one JSON object per line, so log shippers can index fields without parsing
 * prose. The server only ever calls these four methods, so any logger (pino, winston, console) fits
 * behind an adapter of a few lines.
 */

/** Extra structured fields of a log line. Values must be JSON-serialisable. */
export type LogFields = Record<string, unknown>;

/** The logger interface every part of the server logs through. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Log levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVEL_RANK: Record<LogLevel, number> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
  silent: 99,
};

/** Options of {@link createJsonLogger}. */
export interface JsonLoggerOptions {
  /** Lines below this level are dropped. Default `info`. */
  level?: LogLevel;
  /** Where lines go. Default: `process.stdout`. */
  write?: (line: string) => void;
  /** Fields added to every line (e.g. `{ service: 'presence' }`). */
  base?: LogFields;
  /** Clock for the `time` field; injectable for tests. */
  now?: () => number;
}

/**
 * A logger that writes `{"time":"…","level":"info","msg":"…",…fields}` lines.
 *
 * @example
 * const logger = createJsonLogger({ level: 'debug' });
 * logger.info('listening', { url: 'http://127.0.0.1:3000' });
 */
export function createJsonLogger(options: JsonLoggerOptions = {}): Logger {
  const threshold = LEVEL_RANK[options.level ?? 'info'];
  const write = options.write ?? writeToStdout;
  const now = options.now ?? Date.now;
  const base = options.base ?? {};
  const emit = (
    level: Exclude<LogLevel, 'silent'>,
    msg: string,
    fields?: LogFields,
  ): void => {
    if (LEVEL_RANK[level] < threshold) return;
    const record = {
      time: new Date(now()).toISOString(),
      level,
      msg,
      ...base,
      ...serialiseFields(fields),
    };
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      // A circular or BigInt field must never take the request down with it.
      line = JSON.stringify({
        time: record.time,
        level,
        msg,
        log_error: 'unserialisable fields',
      });
    }
    write(`${line}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

let stdoutGuarded = false;

/**
 * Writes to stdout, ignoring write errors: a closed pipe (the log reader went away, EPIPE) must never
 * crash the server it is logging for.
 */
function writeToStdout(line: string): void {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', () => undefined);
  }
  process.stdout.write(line);
}

/** A logger that drops everything (the default in tests). */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

/**
 * Errors do not serialise with JSON.stringify (their fields are non-enumerable); turn them into
 * `{ name, message, code, stack }` so the log line keeps the detail the HTTP response hides.
 */
function serialiseFields(fields: LogFields | undefined): LogFields {
  if (!fields) return {};
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields))
    out[key] = value instanceof Error ? describeError(value) : value;
  return out;
}

/** A JSON-friendly description of an error, stack included (logs only, never responses). */
export function describeError(err: unknown): LogFields {
  if (!(err instanceof Error)) return { message: String(err) };
  const described: LogFields = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) described['code'] = code;
  if (err.stack) described['stack'] = err.stack;
  return described;
}
