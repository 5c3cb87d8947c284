import type { Application } from 'express';
import demoConfig from '../config/demo.js';
import {
  createPresenceServer,
  type PresenceServer,
} from './presence-server.js';
import { createJsonLogger, type Logger } from './http/logger.js';

/**
 * What `ember serve` mounts in this repository (the addon's `serverMiddleware` calls it): the presence
 * server with the demo channels and the demo login, on the embedded MemoryStore — or on Redis when
 * `REDIS_URL` is set — so `npm start` runs the whole demo on one port. Host apps that install the addon
 * never run this.
 *
 * @param options.logger where to log (tests pass a silent one); default JSON lines on stdout.
 * @returns the mounted presence server (its sweeper does not keep ember-cli alive).
 */
export async function mountDevServer(
  app: Application,
  options: { logger?: Logger } = {},
): Promise<PresenceServer> {
  const redisUrl = process.env['REDIS_URL'] || undefined;
  const logger =
    options.logger ??
    createJsonLogger({
      level: 'info',
      base: { service: 'ember-presence', mode: 'ember-serve' },
    });
  const presence = createPresenceServer({
    ...(redisUrl ? { redisUrl } : {}),
    demoLogin: true,
    logger,
  });
  await demoConfig(presence);
  app.use(presence.router);
  logger.info('presence server mounted in ember serve', {
    routes: [
      '/presence/get',
      '/presence/update',
      '/message-bus/:clientId/poll',
      '/presence/demo-login',
      '/healthz',
    ],
    store: redisUrl ? 'redis' : 'memory (single process)',
  });
  return presence;
}
