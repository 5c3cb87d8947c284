'use strict';

module.exports = function (environment) {
  const ENV = {
    modulePrefix: 'dummy',
    environment,
    rootURL: '/',
    locationType: 'history',
    EmberENV: {
      EXTEND_PROTOTYPES: false,
      FEATURES: {
        // Here you can enable experimental features on an ember canary build
        // e.g. EMBER_NATIVE_DECORATOR_SUPPORT: true
      },
    },

    APP: {
      // Here you can pass flags/options to your application instance
      // when it is created
    },

    // ember-presence: the defaults (docs/protocol.md §7) suit the demo; see addon/-private/config.ts for every field.
    'ember-presence': {
      baseUrl: '/',
    },
  };

  if (environment === 'development') {
    // ENV.APP.LOG_RESOLVER = true;
    // ENV.APP.LOG_ACTIVE_GENERATION = true;
    // ENV.APP.LOG_TRANSITIONS = true;
    // ENV.APP.LOG_TRANSITIONS_INTERNAL = true;
    // ENV.APP.LOG_VIEW_LOOKUPS = true;
  }

  // The end-to-end suite (e2e/) builds the demo with a short heartbeat, so that its short channel timeout
  // tells a cut network from a quiet one within seconds (the 30 s default suits the 60 s default timeout).
  if (process.env.EMBER_PRESENCE_HEARTBEAT_MS) {
    ENV['ember-presence'] = {
      ...ENV['ember-presence'],
      heartbeatMs: Number(process.env.EMBER_PRESENCE_HEARTBEAT_MS),
    };
  }

  if (environment === 'test') {
    // Testem prefers this...
    ENV.locationType = 'none';

    // keep test console output quieter
    ENV.APP.LOG_ACTIVE_GENERATION = false;
    ENV.APP.LOG_VIEW_LOOKUPS = false;

    ENV.APP.rootElement = '#ember-testing';
    ENV.APP.autoboot = false;

    // Zero debounce/throttle: updates go out on the next microtask, so tests need neither real waiting
    // nor clock ticks for them (heartbeat and back-off still use the injected clock).
    ENV['ember-presence'] = {
      ...ENV['ember-presence'],
      debounceMs: 0,
      throttleMs: 0,
    };
  }

  if (environment === 'production') {
    // here you can enable a production-specific feature
  }

  return ENV;
};
