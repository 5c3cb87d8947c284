import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Lru } from '../src/core/lru.js';

describe('Lru (the stores’ in-process caches)', () => {
  it('keeps every entry used among the last max uses, forgets unused ones, holds at most 2 × max', () => {
    const lru = new Lru<number, string>(100);
    for (let i = 0; i < 1000; i++) {
      lru.set(i, `v${i}`);
      // Entry 0 is used all along: never forgotten.
      assert.equal(lru.get(0), 'v0', `after ${i}`);
      assert.ok(lru.size <= 200, `size ${lru.size}`);
    }
    // The 99 newest besides 0 are all there; an entry 200+ writes old is gone.
    for (let i = 901; i < 1000; i++) assert.equal(lru.get(i), `v${i}`);
    assert.equal(lru.get(500), undefined);
  });

  it('updates in place, deletes from either generation', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2); // a and b are now the old generation
    lru.set('a', 3); // back into the current one, with its new value
    assert.equal(lru.get('a'), 3);
    assert.equal(lru.get('b'), 2);
    lru.delete('a');
    lru.delete('b');
    assert.equal(lru.get('a'), undefined);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.size, 0);
  });

  it('with a weight, counts entries by it: the state cache keeps lists up to max users, at most 2 × max', () => {
    const lru = new Lru<string, number[]>(100, (list) => list.length);
    const list = (n: number) => Array.from({ length: n }, (_, i) => i);
    lru.set('big', list(60));
    lru.set('small', list(30));
    lru.set('small', list(10)); // replaced: its old weight no longer counts
    assert.deepEqual(lru.get('small'), list(10));
    lru.set('third', list(29)); // 60 + 10 + 29 = 99: still one generation
    lru.set('fourth', list(50)); // 149 ≥ 100: everything becomes the old generation
    lru.set('fifth', list(100)); // fills the new generation at once: the old one goes
    assert.equal(lru.get('big'), undefined);
    assert.equal(lru.get('fourth'), undefined);
    assert.deepEqual(lru.get('fifth'), list(100));
  });

  it('refuses a bound below one', () => {
    assert.throws(() => new Lru(0), /an Lru holds at least 1 entry, got 0/);
  });
});
