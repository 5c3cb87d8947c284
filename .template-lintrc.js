'use strict';

module.exports = {
  extends: 'recommended',
  // Each consumer app under test-apps/ has its own lint setup.
  ignore: ['test-apps/**', 'node_modules/**', 'dist/**'],
};
