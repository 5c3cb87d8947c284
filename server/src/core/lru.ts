/**
 * A bounded map that forgets its least recently used entry first: the in-process caches of the stores
 * (channel keys, known clients and profiles, client tags). A Map keeps insertion order, so moving an
 * entry to the end on use makes its first key the least recently used.
 */
export class Lru<K, V> {
  readonly #max: number;
  readonly #map = new Map<K, V>();

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1)
      throw new TypeError(`an Lru holds at least 1 entry, got ${String(max)}`);
    this.#max = max;
  }

  /** The value of `key` (marking it recently used), or `undefined`. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value === undefined) return undefined;
    this.#map.delete(key);
    this.#map.set(key, value);
    return value;
  }

  /** Sets `key` as the most recently used entry, forgetting the least recently used one beyond the bound. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#max)
      this.#map.delete(this.#map.keys().next().value as K);
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  get size(): number {
    return this.#map.size;
  }
}
