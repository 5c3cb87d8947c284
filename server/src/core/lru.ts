/**
 * A bounded map that forgets entries not used for a while: the in-process caches of the stores (channel
 * keys, known clients and profiles, client tags, unknown channel names).
 *
 * Two generations of at most `max` entries each: new and used entries go to the current one; when it is
 * full it becomes the old one and the previous old one is dropped whole. An entry used among the last
 * `max` distinct uses is therefore always kept, at most `2 × max` are held, and every operation is O(1).
 * (Evicting one entry at a time through `Map#keys().next()` is not: V8 walks over the deleted slots at
 * the front of a Map that is evicted from, so a full cache cost time in proportion to its size per call.)
 */
export class Lru<K, V> {
  readonly #max: number;
  #current = new Map<K, V>();
  #old = new Map<K, V>();

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1)
      throw new TypeError(`an Lru holds at least 1 entry, got ${String(max)}`);
    this.#max = max;
  }

  /** The value of `key` (marking it used), or `undefined`. */
  get(key: K): V | undefined {
    const value = this.#current.get(key);
    if (value !== undefined) return value;
    const old = this.#old.get(key);
    if (old !== undefined) {
      this.#old.delete(key);
      this.#add(key, old);
    }
    return old;
  }

  /** Sets `key` (marking it used). */
  set(key: K, value: V): void {
    if (this.#current.has(key)) {
      this.#current.set(key, value);
      return;
    }
    this.#old.delete(key);
    this.#add(key, value);
  }

  delete(key: K): void {
    this.#current.delete(key);
    this.#old.delete(key);
  }

  /** Entries held (at most `2 × max`). */
  get size(): number {
    return this.#current.size + this.#old.size;
  }

  #add(key: K, value: V): void {
    this.#current.set(key, value);
    if (this.#current.size >= this.#max) {
      this.#old = this.#current;
      this.#current = new Map();
    }
  }
}
