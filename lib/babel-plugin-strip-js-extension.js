'use strict';

/**
 * The server core (`server/src/core/`) is also bundled into test-support so the fake server runs the
 * real semantics. It is written for Node ESM, where relative imports must end in `.js`; Ember's AMD
 * loader names modules without extensions, so the build drops that suffix from relative specifiers.
 */
module.exports = function stripJsExtension() {
  function rewrite(source) {
    if (
      source &&
      typeof source.value === 'string' &&
      // Relative, or already made absolute by a module resolver that ran first (in some host apps it
      // does); only our own modules, never another package's `x.js` file.
      (source.value.startsWith('.') ||
        source.value.startsWith('ember-presence/')) &&
      source.value.endsWith('.js')
    ) {
      source.value = source.value.slice(0, -3);
    }
  }
  const visitor = {
    ImportDeclaration(path) {
      rewrite(path.node.source);
    },
    ExportNamedDeclaration(path) {
      rewrite(path.node.source);
    },
    ExportAllDeclaration(path) {
      rewrite(path.node.source);
    },
  };
  return {
    name: 'ember-presence-strip-js-extension',
    visitor: {
      // On Program entry, so the rewrite happens before ember-cli-babel's module resolver turns relative
      // specifiers into absolute module names (it also works on Program entry, and runs after us).
      Program(path) {
        path.traverse(visitor);
      },
    },
  };
};
