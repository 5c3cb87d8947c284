import express, {
  type Application,
  type Request,
  type Response,
} from 'express';
import {
  createPresenceServer,
  defaultLogger,
  type PresenceServer,
  type PresenceServerOptions,
} from '../presence-server.js';
import { accessLog } from './access-log.js';
import { errorMiddleware, notFoundHandler } from './error-middleware.js';

/** Options of {@link createApp}: {@link PresenceServerOptions} plus standalone-server settings. */
export interface CreateAppOptions extends PresenceServerOptions {
  /** Serve a built Ember app from this directory, with an SPA fallback to its index.html. */
  staticDir?: string;
  /**
   * Express `trust proxy`: which peers may set `X-Forwarded-Host`/`-Proto`/`-For`, which the CSRF
   * same-origin check (and the client IP) then honour. Default `false`: no forwarded header is believed,
   * whoever the peer is, until the operator says a proxy is in front (`'loopback'` for one on the same
   * machine, a subnet, a hop count; CLI `--trust-proxy`). A dev proxy that keeps the `Host` header (vite's
   * default) needs none.
   */
  trustProxy?: boolean | string | number;
}

/** An Express app with its presence server attached. */
export type PresenceApp = Application & { presence: PresenceServer };

/**
 * The standalone server's Express app: the presence router, optional static files, JSON 404s and JSON
 * errors. It never listens (`main.ts` does; tests drive it with supertest).
 *
 * @example
 * const app = createApp({ currentUser });
 * app.presence.registerPrefix('site', () => ({ public: true }));
 * app.listen(3000);
 */
export function createApp(options: CreateAppOptions = {}): PresenceApp {
  const logger = options.logger ?? defaultLogger();
  const presence = createPresenceServer({ ...options, logger });
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy ?? false);
  app.use(accessLog(logger));
  app.use(presence.router);
  if (options.staticDir !== undefined) {
    const root = options.staticDir;
    app.use(express.static(root, { index: 'index.html' }));
    app.get('/{*path}', (req: Request, res: Response, next) => {
      // Client-side routes get the app shell; API paths and non-HTML requests keep their JSON 404.
      if (isApiPath(req.path) || !req.accepts('html')) {
        next();
        return;
      }
      res.sendFile('index.html', { root }, (err?: Error) => {
        if (err) next(err);
      });
    });
  }
  app.use(notFoundHandler());
  app.use(errorMiddleware(logger));
  return Object.assign(app, { presence });
}

function isApiPath(path: string): boolean {
  return (
    path.startsWith('/presence/') ||
    path.startsWith('/message-bus/') ||
    path === '/healthz'
  );
}
