/**
 * A bounded map that forgets entries not used for a while: the in-process caches of the stores (channel
 * keys, known clients and profiles, client tags, unknown channel names, state lists).
 *
 * Two generations of at most `max` entries each (or of entries weighing `max` in all, with `weight`): new
 * and used entries go to the current one; when it is full it becomes the old one and the previous old
 * one is dropped whole. An entry used among the last `max` distinct uses is therefore always kept, at
 * most `2 × max` are held, and every operation is O(1).
 * (Evicting one entry at a time through `Map#keys().next()` is not: V8 walks over the deleted slots at
 * the front of a Map that is evicted from, so a full cache cost time in proportion to its size per call.)
 */
export class Lru<K, V> {
  readonly #max: number;
  readonly #weight: (value: V) => number;
  #current = new Map<K, V>();
  /** The summed weight of the current generation. */
  #currentWeight = 0;
  #old = new Map<K, V>();

  /** `weight`: what one entry counts against `max` (default 1). */
  constructor(max: number, weight: (value: V) => number = () => 1) {
    if (!Number.isSafeInteger(max) || max < 1)
      throw new TypeError(`an Lru holds at least 1 entry, got ${String(max)}`);
    this.#max = max;
    this.#weight = weight;
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
    this.delete(key);
    this.#add(key, value);
  }

  delete(key: K): void {
    const value = this.#current.get(key);
    if (value !== undefined) {
      this.#current.delete(key);
      this.#currentWeight -= this.#weight(value);
    } else this.#old.delete(key);
  }

  /** Entries held (at most `2 × max`). */
  get size(): number {
    return this.#current.size + this.#old.size;
  }

  #add(key: K, value: V): void {
    this.#current.set(key, value);
    this.#currentWeight += this.#weight(value);
    if (this.#currentWeight >= this.#max) {
      this.#old = this.#current;
      this.#current = new Map();
      this.#currentWeight = 0;
    }
  }
}
