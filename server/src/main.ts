#!/usr/bin/env node
/**
 * `ember-presence-server`: the reference presence server as a command. Only this file reads argv and
 * the environment, and only this file listens; everything else is the library (`createApp`).
 */
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createApp } from './http/app.js';
import type { PresenceServer } from './presence-server.js';
import { firstUser, type CurrentUserHook } from './http/auth/current-user.js';
import {
  DEFAULT_JWT_COOKIE,
  jwtCurrentUser,
  readPublicKeyFile,
} from './http/auth/jwt.js';
import {
  createJsonLogger,
  describeError,
  type Logger,
  type LogLevel,
} from './http/logger.js';
import { answerClientErrorsWithJson } from './http/client-errors.js';
import { checkWebhookOptions } from './events/webhooks.js';
import {
  DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER,
  DEFAULT_MAX_HELD_POLLS_PER_PEER,
} from './core/message-bus/index.js';

const USAGE = `Usage: ember-presence-server [options]

Real-time presence (Discourse PresenceChannel / MessageBus protocol) for Ember apps.

Options:
  --port <n>              port to listen on (default: $PORT or 3000; 0 = any free port)
  --host <addr>           address to bind (default: 127.0.0.1)
  --redis-url <url>       Redis for state shared by many processes (default: $REDIS_URL;
                          absent = embedded in-memory store, one process only)
  --redis-key-prefix <p>  prefix of every Redis key and shard channel (default: ep:), so that
                          several deployments can share one Redis
  --config <file>         JS module whose default export registers channel prefixes:
                            export default (presence) => presence.registerPrefix('site', (name) => …)
  --jwt-secret <secret>   accept HS256 JWTs signed with this secret (default: $PRESENCE_JWT_SECRET)
  --jwt-public-key <pem>  accept RS256 JWTs verified with this PEM public key file
  --jwt-allow-no-exp      accept JWTs without an exp claim (default: rejected, a leaked token
                          without expiry would be valid for ever)
  --jwt-cookie <name>     cookie carrying the JWT when no Authorization header is sent
                          (default: ${DEFAULT_JWT_COOKIE})
  --demo                  enable the demo login and, without --config, the demo channels
  --allowed-origin <url>  another origin allowed to POST updates (repeatable)
  --max-channels-per-user <n>
                          most channels one user may be present in at once (default 100)
  --max-held-polls <n>    most message-bus long polls this process holds at once (default 1000);
                          past it polls are answered at once, so clients poll instead of waiting
  --max-held-polls-per-peer <n>
                          most long polls held at once for one signed-in user, or one address
                          for anonymous polls (an IPv6 /64); past it they are answered at once
                          (default ${DEFAULT_MAX_HELD_POLLS_PER_PEER})
  --max-followed-channels-per-peer <n>
                          most channels one peer's held polls follow at once (default
                          ${DEFAULT_MAX_FOLLOWED_CHANNELS_PER_PEER})
  --static <dir>          also serve a built Ember app from <dir> (SPA fallback to index.html)
  --metrics               serve Prometheus metrics on GET /metrics (same port: keep it off the
                          public internet)
  --trust-proxy <value>   believe X-Forwarded-* headers from these peers: loopback, a subnet
                          (10.0.0.0/8), or a hop count (default: none; set it when a proxy that
                          rewrites Host is in front)
  --webhook-url <url>     POST every join/leave event to this receiver, signed (repeatable;
                          needs --webhook-secret); see the README's "Webhooks"
  --webhook-secret <s>    HMAC-SHA256 key of the X-Presence-Signature header, at least 16
                          characters (default: $PRESENCE_WEBHOOK_SECRET)
  --event-lease-ms <n>    how long this process keeps a share of event deliveries without
                          renewing it: after a crash, another process takes over at most this
                          much later (default 15000)
  --log-level <level>     debug | info | warn | error | silent (default: info)
  -h, --help              show this help

Without --jwt-* or --demo every request is anonymous: public channels can be watched, nobody can enter.
Stops gracefully on SIGTERM/SIGINT.`;

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'redis-url': { type: 'string' },
  'redis-key-prefix': { type: 'string' },
  config: { type: 'string' },
  'jwt-secret': { type: 'string' },
  'jwt-public-key': { type: 'string' },
  'jwt-cookie': { type: 'string' },
  'jwt-allow-no-exp': { type: 'boolean' },
  'trust-proxy': { type: 'string' },
  'max-channels-per-user': { type: 'string' },
  'max-held-polls': { type: 'string' },
  'max-held-polls-per-peer': { type: 'string' },
  'max-followed-channels-per-peer': { type: 'string' },
  demo: { type: 'boolean' },
  'allowed-origin': { type: 'string', multiple: true },
  static: { type: 'string' },
  metrics: { type: 'boolean' },
  'log-level': { type: 'string' },
  'webhook-url': { type: 'string', multiple: true },
  'webhook-secret': { type: 'string' },
  'event-lease-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const LOG_LEVELS: readonly LogLevel[] = [
  'debug',
  'info',
  'warn',
  'error',
  'silent',
];
const SHUTDOWN_GRACE_MS = 10_000; // held long-polls are answered at once; this only bounds a stuck close

/** Thrown for bad command lines: usage on stderr, exit 2. */
class UsageError extends Error {}

/** Parses argv strictly: unknown flags, missing values and positionals are usage errors. */
function parseCommandLine(args: string[]) {
  try {
    return parseArgs({
      args,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    return usageError((err as Error).message);
  }
}

async function main(): Promise<void> {
  const values = parseCommandLine(process.argv.slice(2));
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // An empty PORT counts as unset, as REDIS_URL does below.
  const port = parsePort(values.port ?? (process.env['PORT'] || '3000'));
  const host = values.host ?? '127.0.0.1';
  const level = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(level as LogLevel))
    usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const logger = createJsonLogger({
    level: level as LogLevel,
    base: { service: 'ember-presence' },
  });

  const redisUrl =
    values['redis-url'] ?? (process.env['REDIS_URL'] || undefined);
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    usageError(
      `--redis-url must look like redis://host:6379 or rediss://…, got "${redisUrl}"`,
    );
  }
  const hooks: CurrentUserHook[] = [];
  const jwtSecret =
    values['jwt-secret'] ?? (process.env['PRESENCE_JWT_SECRET'] || undefined);
  if (jwtSecret !== undefined || values['jwt-public-key'] !== undefined) {
    if (jwtSecret !== undefined && jwtSecret.length < 32) {
      logger.warn(
        'the JWT secret is shorter than 32 characters; use a long random secret in production',
      );
    }
    hooks.push(
      await jwtCurrentUser({
        ...(jwtSecret !== undefined ? { secret: jwtSecret } : {}),
        ...(values['jwt-public-key'] !== undefined
          ? { publicKey: readPublicKeyFile(values['jwt-public-key']) }
          : {}),
        cookieName: values['jwt-cookie'] ?? DEFAULT_JWT_COOKIE,
        allowNoExpiry: values['jwt-allow-no-exp'] === true,
        logger,
      }),
    );
  }

  const redisKeyPrefix = values['redis-key-prefix'];
  if (redisKeyPrefix !== undefined && !redisUrl) {
    usageError('--redis-key-prefix needs --redis-url (or REDIS_URL)');
  }
  if (redisKeyPrefix !== undefined && /[{}\s]/.test(redisKeyPrefix)) {
    // Braces would move keys out of their channel's hash slot.
    usageError(
      `--redis-key-prefix must not contain braces or spaces, got "${redisKeyPrefix}"`,
    );
  }
  const webhookUrls = values['webhook-url'] ?? [];
  const webhookSecret =
    values['webhook-secret'] ??
    (process.env['PRESENCE_WEBHOOK_SECRET'] || undefined);
  if (webhookUrls.length > 0 && webhookSecret === undefined)
    usageError(
      '--webhook-url needs --webhook-secret (or PRESENCE_WEBHOOK_SECRET): receivers verify the signature with it',
    );
  if (webhookUrls.length === 0 && values['webhook-secret'] !== undefined)
    usageError('--webhook-secret without --webhook-url: give the receiver URL');
  if (webhookUrls.length > 0) {
    try {
      checkWebhookOptions({ urls: webhookUrls, secret: webhookSecret! });
    } catch (err) {
      usageError(`--webhook-*: ${(err as Error).message}`);
    }
  }
  const app = createApp({
    ...(redisUrl ? { redisUrl } : {}),
    ...(redisKeyPrefix !== undefined ? { redisKeyPrefix } : {}),
    currentUser: firstUser(...hooks),
    demoLogin: values.demo === true,
    allowedOrigins: values['allowed-origin'] ?? [],
    ...(values['max-channels-per-user'] !== undefined
      ? {
          maxChannelsPerUser: parsePositive(
            values['max-channels-per-user'],
            '--max-channels-per-user',
          ),
        }
      : {}),
    ...(values['max-held-polls'] !== undefined
      ? {
          maxHeldPolls: parsePositive(
            values['max-held-polls'],
            '--max-held-polls',
          ),
        }
      : {}),
    ...(values['max-held-polls-per-peer'] !== undefined
      ? {
          maxHeldPollsPerPeer: parsePositive(
            values['max-held-polls-per-peer'],
            '--max-held-polls-per-peer',
          ),
        }
      : {}),
    ...(values['max-followed-channels-per-peer'] !== undefined
      ? {
          maxFollowedChannelsPerPeer: parsePositive(
            values['max-followed-channels-per-peer'],
            '--max-followed-channels-per-peer',
          ),
        }
      : {}),
    ...(values['trust-proxy'] !== undefined
      ? { trustProxy: parseTrustProxy(values['trust-proxy']) }
      : {}),
    logger,
    ...(values.metrics === true ? { metrics: true } : {}),
    ...(webhookUrls.length > 0
      ? { webhooks: { urls: webhookUrls, secret: webhookSecret! } }
      : {}),
    ...(values['event-lease-ms'] !== undefined
      ? {
          eventLeaseMs: parsePositive(
            values['event-lease-ms'],
            '--event-lease-ms',
          ),
        }
      : {}),
    ...(values.static !== undefined
      ? { staticDir: resolve(values.static) }
      : {}),
  });
  const presence = app.presence;
  logger.info(
    redisUrl
      ? 'store: redis'
      : 'store: memory (single process; use --redis-url to run several)',
    {
      store: redisUrl ? 'redis' : 'memory',
      ...(redisUrl ? { redis: redactUrl(redisUrl) } : {}),
    },
  );

  try {
    const configFile =
      values.config ??
      (values.demo ? new URL('../config/demo.js', import.meta.url) : undefined);
    if (configFile !== undefined)
      await loadConfigModule(configFile, presence, logger);
    else
      logger.warn(
        'no --config given: no channel prefix is registered, every channel is "not found"',
      );
  } catch (err) {
    await presence.close().catch(() => undefined);
    throw err;
  }

  const server = createServer(app);
  answerClientErrorsWithJson(server);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      done();
    });
  });
  const address = server.address();
  const boundPort =
    typeof address === 'object' && address ? address.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  logger.info('listening', {
    url: `http://${urlHost}:${boundPort}`,
    host,
    port: boundPort,
  });
  installShutdown(server, presence, logger);
}

/** Imports the `--config` module and runs its default export with the presence server. */
async function loadConfigModule(
  file: string | URL,
  presence: PresenceServer,
  logger: Logger,
): Promise<void> {
  const url = typeof file === 'string' ? pathToFileURL(resolve(file)) : file;
  let mod: { default?: unknown };
  try {
    mod = (await import(url.href)) as { default?: unknown };
  } catch (err) {
    throw new Error(
      `--config: cannot load ${url.pathname}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (typeof mod.default !== 'function') {
    throw new Error(
      `--config: ${url.pathname} must default-export a function, e.g. ` +
        `export default (presence) => { presence.registerPrefix('site', (name) => ({ public: true })) }`,
    );
  }
  await (mod.default as (server: PresenceServer) => unknown)(presence);
  logger.info('config loaded', { config: url.pathname });
}

function installShutdown(
  server: Server,
  presence: PresenceServer,
  logger: Logger,
): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('shutting down', { signal });
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    // 1. stop accepting; 2. answer held polls (the store stays open); 3. let the requests in flight
    // finish, closing keep-alive connections as they fall idle; 4. only then close the store. A request
    // never meets a closed store, so shutdown answers no 500.
    const closed = new Promise<void>((done) => server.close(() => done()));
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    presence
      .drain()
      .then(() => {
        server.closeIdleConnections();
        return closed;
      })
      .then(() => presence.close())
      .catch((err: unknown) =>
        logger.error('error while closing the presence server', {
          error: describeError(err),
        }),
      )
      .then(
        () => {
          clearInterval(idle);
          logger.info('stopped');
          process.exit(0);
        },
        () => process.exit(1),
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535)
    usageError(`--port must be 0–65535, got "${value}"`);
  return Number(value);
}

/**
 * `--trust-proxy`: a hop count (`1`), or names/addresses/subnets Express understands (`loopback`,
 * `10.0.0.0/8`, comma-separated). `true`/`false` are refused: trusting every peer lets anyone forge
 * `X-Forwarded-Host`.
 */
function parseTrustProxy(value: string): number | string {
  if (/^\d{1,2}$/.test(value)) return Number(value);
  if (
    value === '' ||
    value === 'true' ||
    value === 'false' ||
    !/^[\w.:/,\s-]+$/.test(value)
  ) {
    usageError(
      `--trust-proxy must be a hop count, loopback, linklocal, uniquelocal, or addresses/subnets (comma-separated), got "${value}"`,
    );
  }
  return value;
}

function parsePositive(value: string, flag: string): number {
  if (!/^[1-9]\d{0,8}$/.test(value))
    usageError(`${flag} must be a positive integer, got "${value}"`);
  return Number(value);
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable url)';
  }
}

function usageError(message: string): never {
  throw new UsageError(message);
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`ember-presence-server: ${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'failed to start', error: describeError(err) })}\n`,
  );
  process.exit(1);
});
