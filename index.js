'use strict';

const path = require('node:path');

module.exports = {
  name: require('./package').name,

  options: {
    'ember-cli-babel': { enableTypeScriptTransform: true },
    babel: {
      plugins: [require.resolve('./lib/babel-plugin-strip-js-extension')],
    },
  },

  /**
   * The test-support fake server runs the real server core, so both cannot drift apart: the
   * environment-agnostic `server/src/core/` is published inside test-support as `-private/core/`.
   */
  treeForAddonTestSupport(tree) {
    const Funnel = require('broccoli-funnel');
    const mergeTrees = require('broccoli-merge-trees');
    const core = new Funnel(path.join(__dirname, 'server/src/core'), {
      destDir: '-private/core',
      include: ['**/*.ts'],
    });
    return this._super.treeForAddonTestSupport.call(
      this,
      mergeTrees([tree, core].filter(Boolean), { overwrite: true }),
    );
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
