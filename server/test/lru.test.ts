import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Lru } from '../src/core/lru.js';

describe('Lru (the stores’ in-process caches)', () => {
  it('forgets the least recently used entry first; a read counts as a use', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    assert.equal(lru.get('a'), 1); // a is now the most recently used
    lru.set('c', 3);
    assert.equal(lru.get('b'), undefined, 'b was the least recently used');
    assert.equal(lru.get('a'), 1);
    assert.equal(lru.get('c'), 3);
    lru.set('a', 4); // an update is a use too
    lru.set('d', 5);
    assert.equal(lru.get('c'), undefined);
    assert.equal(lru.get('a'), 4);
    assert.equal(lru.size, 2);
    lru.delete('a');
    assert.equal(lru.size, 1);
  });

  it('refuses a bound below one', () => {
    assert.throws(() => new Lru(0), /an Lru holds at least 1 entry, got 0/);
  });
});
