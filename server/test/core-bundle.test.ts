import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The server core also runs in the browser, inside the test-support fake server, as one bundled module
 * (`scripts/build-core.cjs`). These tests hold every core file to what makes that possible.
 */
const CORE = fileURLToPath(new URL('../src/core/', import.meta.url));
const require = createRequire(import.meta.url);
const { buildCore } = require('../../scripts/build-core.cjs') as {
  buildCore: (outfile?: string) => string;
};

function coreFiles(dir = CORE): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? coreFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

describe('the server core, bundled for the browser', () => {
  for (const file of coreFiles()) {
    const name = relative(CORE, file);
    it(`${name} uses no Node-only API and imports nothing outside core`, () => {
      const source = readFileSync(file, 'utf8');
      const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      assert.doesNotMatch(code, /\brequire\(|\bprocess\.\w|\bBuffer\b/);
      for (const [, specifier] of source.matchAll(
        /(?:from|import)\s+'([^']+)'/g,
      )) {
        assert.ok(
          specifier!.startsWith('.'),
          `${name} imports the package ${specifier}`,
        );
        const target = resolve(dirname(file), specifier!);
        assert.ok(
          target.startsWith(CORE) && specifier!.endsWith('.js'),
          `${name} imports ${specifier}, outside core or without .js`,
        );
      }
    });
  }

  it('bundles into one module with no imports left', () => {
    // Into a scratch file: rewriting the repository's copy would make a running `ember serve` rebuild.
    const dir = mkdtempSync(join(tmpdir(), 'presence-core-'));
    try {
      const bundle = readFileSync(buildCore(join(dir, 'core.js')), 'utf8');
      assert.doesNotMatch(bundle, /^\s*import\s/m);
      assert.match(bundle, /export \{[^}]*\bPresenceCore\b/);
      assert.match(bundle, /export \{[^}]*\bPollHandler\b/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
