/**
 * A server under test, run in its own process (forked by `child.ts`) so that the load generator and the
 * server do not share one event loop, and so that RSS figures are the server's alone.
 *
 * Configured by the BENCH_SERVER environment variable (JSON {@link ChildConfig}); answers IPC requests
 * `{ id, method }` with `{ id, result }` and announces `{ ready: true, port }` once listening on
 * 127.0.0.1 (port 0).
 *
 * Kinds:
 * - `bare-form`: a bare Express route parsing the same form body as `/presence/update` and answering `{}`;
 * - `presence`: the real `createApp` (memory or Redis store);
 * - `fanout`: the same, with `maxHeldPolls` (and the per-address cap) raised to hold every poll of the
 *   bench;
 * - `event-baseline`: a bare `node:http` server holding requests and answering them all on one
 *   `EventEmitter` emit;
 * - `event-express`: the same handler behind Express.
 */
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import express from 'express';

import { createApp, silentLogger } from '../../server/src/index.js';
import { JSON_HEADERS } from '../../server/src/core/message-bus/poll-handler.js';
import { benchChannel } from './cli-config.js';
import { benchUser } from './users.js';
import demoConfig from '../../server/config/demo.js';

/** How the child is configured (JSON in BENCH_SERVER). */
export interface ChildConfig {
  kind:
    | 'bare-form'
    | 'presence'
    | 'fanout'
    | 'event-baseline'
    | 'event-express'
    | 'demo';
  store?: 'memory' | 'redis';
  redisUrl?: string;
  keyPrefix?: string;
  /** demo: the built demo app to serve. */
  staticDir?: string;
  /** fanout: most held polls (default 20 000). */
  maxHeldPolls?: number;
}

interface Running {
  server: http.Server;
  stats(): Record<string, number>;
  close(): Promise<void>;
}

async function start(config: ChildConfig): Promise<Running> {
  switch (config.kind) {
    case 'bare-form': {
      const app = express();
      app.disable('x-powered-by');
      app.post(
        '/presence/update',
        express.urlencoded({ extended: false }),
        (_req, res) => {
          res.json({});
        },
      );
      return {
        server: http.createServer(app),
        stats: () => ({}),
        close: () => Promise.resolve(),
      };
    }
    case 'presence':
    case 'fanout': {
      const app = createApp({
        ...(config.store === 'redis'
          ? { redisUrl: config.redisUrl!, redisKeyPrefix: config.keyPrefix! }
          : {}),
        // fanout: hold every poll of the bench, for longer than a round takes.
        ...(config.kind === 'fanout'
          ? {
              longPollMs: 120_000,
              maxHeldPolls: config.maxHeldPolls ?? 20_000,
              // Every poll of the bench comes from this machine's address, following one channel.
              maxHeldPollsPerPeer: config.maxHeldPolls ?? 20_000,
              maxFollowedChannelsPerPeer: config.maxHeldPolls ?? 20_000,
            }
          : {}),
        currentUser: benchUser,
        rateLimit: false,
        logger: silentLogger,
        sweepIntervalMs: 0,
      });
      app.presence.registerPrefix('bench', benchChannel);
      return {
        server: http.createServer(app),
        stats: () => ({ heldPolls: app.presence.stats().heldPolls }),
        close: () => app.presence.close(),
      };
    }
    case 'demo': {
      // The demo (demo login, its channels, the built app) with every team open to the demo users, so the
      // bench can fill `/team/<id>` channels of any size and enter as many as it likes.
      const app = createApp({
        redisUrl: config.redisUrl!,
        redisKeyPrefix: config.keyPrefix!,
        demoLogin: true,
        staticDir: config.staticDir!,
        rateLimit: false,
        logger: silentLogger,
        sweepIntervalMs: 0,
      });
      await demoConfig({
        registerPrefix: (
          prefix: string,
          callback: (name: string) => object | null,
        ) =>
          app.presence.registerPrefix(prefix, (name) =>
            prefix === 'team'
              ? /^\/team\/[1-9]\d{0,9}$/.test(name)
                ? { allowedUserIds: [1, 2, 3, 4] }
                : null
              : callback(name),
          ),
      });
      return {
        server: http.createServer(app),
        stats: () => ({}),
        close: () => app.presence.close(),
      };
    }
    case 'event-baseline':
    case 'event-express': {
      // One listener releases every held request in one pass. (A `once` listener per request, as this
      // baseline had until 2026-12-03, costs O(n²): each removes itself from a 10,000-entry array.)
      const events = new EventEmitter();
      const held = new Set<http.ServerResponse>();
      // The bus's own answer headers, so the bytes each answer carries match.
      const headers = { ...JSON_HEADERS };
      events.on('fire', (body: string) => {
        const answering = [...held];
        held.clear();
        const length = Buffer.byteLength(body);
        for (const res of answering)
          res
            .writeHead(200, { ...headers, 'Content-Length': length })
            .end(body);
      });
      const hold = (req: http.IncomingMessage, res: http.ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          if (req.url === '/fire') {
            events.emit(
              'fire',
              JSON.stringify([{ fired: Buffer.concat(chunks).toString() }]),
            );
            res
              .writeHead(200, { 'Content-Type': 'application/json' })
              .end('{}');
            return;
          }
          held.add(res);
          res.on('close', () => held.delete(res));
        });
      };
      // event-express: the same handler as an Express app's only middleware, so the one difference is
      // what Express does to every request (it switches req's and res's prototypes to its own).
      let handler: http.RequestListener = hold;
      if (config.kind === 'event-express') {
        const app = express();
        app.disable('x-powered-by');
        app.use(hold);
        handler = app;
      }
      return {
        server: http.createServer(handler),
        stats: () => ({ heldPolls: held.size }),
        close: () => Promise.resolve(),
      };
    }
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env['BENCH_SERVER'] ?? '{}') as ChildConfig;
  const running = await start(config);
  const { server } = running;
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
  server.maxConnections = 30_000;
  await new Promise<void>((resolve) =>
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, resolve),
  );
  const { port } = server.address() as AddressInfo;
  let profiler: Session | undefined;
  process.on('message', (message: { id: number; method: string }) => {
    void (async () => {
      let result: unknown;
      if (message.method === 'stats') {
        const memory = process.memoryUsage();
        const cpu = process.cpuUsage();
        result = {
          ...running.stats(),
          rss: memory.rss,
          heapUsed: memory.heapUsed,
          cpuMicros: cpu.user + cpu.system,
        };
      } else if (message.method === 'profileStart') {
        profiler ??= new Session();
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
        result = true;
      } else if (message.method === 'profileStop') {
        // Written where BENCH_PROFILE_DIR says; the answer is the file's path.
        const { profile } = await profiler!.post('Profiler.stop');
        profiler!.disconnect();
        const file = path.join(
          process.env['BENCH_PROFILE_DIR'] ?? os.tmpdir(),
          `${config.kind}-${config.store ?? 'none'}-${process.pid}-${Date.now()}.cpuprofile`,
        );
        await writeFile(file, JSON.stringify(profile));
        result = file;
      } else if (message.method === 'close') {
        await running.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        result = true;
      }
      process.send?.({ id: message.id, result });
      if (message.method === 'close') process.disconnect();
    })();
  });
  process.send?.({ ready: true, port });
}

main().catch((error: unknown) => {
  console.error('bench server failed to start:', error);
  process.exit(1);
});
