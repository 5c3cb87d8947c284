import { defineConfig } from 'vite';
import { extensions, classicEmberSupport, ember } from '@embroider/vite';
import { babel } from '@rollup/plugin-babel';

// Development: the presence server (`npx ember-presence-server --config presence.config.mjs`) and your
// backend stay on their own ports, and Vite forwards to them, so the app talks to one origin.
const presenceServer = process.env.PRESENCE_SERVER || 'http://localhost:3000';
const backend = process.env.APP_BACKEND || 'http://localhost:3001';

export default defineConfig({
  server: {
    proxy: {
      '/presence': presenceServer,
      '/message-bus': presenceServer,
      '/api': backend,
    },
  },
  plugins: [
    classicEmberSupport(),
    ember(),
    // extra plugins here
    babel({
      babelHelpers: 'runtime',
      extensions,
    }),
  ],
});
