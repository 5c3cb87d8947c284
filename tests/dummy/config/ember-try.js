'use strict';

/**
 * The Ember version matrix: the addon's own test suite (the dummy app) against every ember-source line we
 * support, from the oldest 6.x LTS to the current release. Run it with `node scripts/ember-matrix.mjs`
 * (each scenario in a scratch copy of the repository, with a time bound and a summary line), or a single
 * scenario with `npx ember try:one ember-lts-6.4`.
 *
 * Versions are pinned ranges, never channel URLs (`ember-source-channel-url`): CI reaches the npm registry
 * and nothing else, and a scenario must mean the same thing on every run. Embroider is covered by the
 * consumer app in test-apps/vite-app rather than by `embroiderSafe()` scenarios here.
 *
 * Keep the list in step with the supported range stated in the README and with `peerDependencies`
 * (`ember-source`) in package.json.
 */
module.exports = async function () {
  return {
    packageManager: 'npm',
    // Port 0: testem takes a free port, so a scenario never fails on a busy 7357 (a second `ember test`
    // on the same machine, e.g. a developer's while the matrix runs).
    command: 'ember test --test-port=0',
    scenarios: [
      {
        // The oldest supported line.
        name: 'ember-lts-6.4',
        npm: { devDependencies: { 'ember-source': '~6.4.0' } },
      },
      {
        name: 'ember-lts-6.8',
        npm: { devDependencies: { 'ember-source': '~6.8.0' } },
      },
      {
        // The last 6.x minor.
        name: 'ember-6.12',
        npm: { devDependencies: { 'ember-source': '~6.12.0' } },
      },
      {
        // The current release (also what package.json pins for development).
        name: 'ember-7.3',
        npm: { devDependencies: { 'ember-source': '~7.3.0' } },
      },
    ],
  };
};
