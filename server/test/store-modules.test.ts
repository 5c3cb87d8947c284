import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';

/** The core modules the MemoryStore is made of, which the browser fake server runs too. */
const STORE_MODULES = [
  'bus-messages.ts',
  'due-heap.ts',
  'listener-registry.ts',
  'memory-store.ts',
  'retention.ts',
  'store-args.ts',
];

describe('the shared store modules of server/src/core', () => {
  for (const file of STORE_MODULES) {
    it(`${file} uses no Node-only API and nothing outside core`, async () => {
      const source = await readFile(
        new URL(`../src/core/${file}`, import.meta.url),
        'utf8',
      );
      assert.doesNotMatch(
        source,
        /from 'node:|\brequire\(|\bprocess\.|\bBuffer\b|from '\.\.\//,
      );
    });
  }
});
