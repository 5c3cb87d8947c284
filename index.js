'use strict';

module.exports = {
  name: require('./package').name,

  options: {
    'ember-cli-babel': { enableTypeScriptTransform: true },
  },

  /**
   * In this repository only, bundle the server core into test-support before each build
   * (`scripts/build-core.cjs`, about 50 ms), so a build or test run never uses a stale copy. A running
   * `ember serve` / `ember test --server` does not watch server/src/core: restart it after changing the
   * core. Host apps get the bundle
   * that `prepack` put in the package.
   */
  included(...args) {
    this._super.included.apply(this, args);
    if (this.project.root === this.root) {
      require('./scripts/build-core.cjs').buildCore();
    }
  },

  /**
   * `npm start` (ember serve) in this repository also serves the presence API from the same port, on the
   * embedded memory store (or Redis when REDIS_URL is set). Host apps that install the addon are never
   * touched: they mount the server themselves.
   */
  async serverMiddleware({ app }) {
    if (this.project.root !== this.root || process.env.PRESENCE_MOUNT === '0')
      return;
    const { register } = await import('tsx/esm/api');
    register();
    const { mountDevServer } = await import('./server/src/dev-mount.ts');
    await mountDevServer(app);
  },
};
