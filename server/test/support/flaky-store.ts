import { MemoryStore, type PresenceStore } from '../../src/index.js';

/**
 * A MemoryStore that can be switched "down": every call but `close` then fails like an unreachable Redis
 * (`ECONNREFUSED`), which the server answers with 503s.
 */
export function flakyStore(): {
  store: PresenceStore;
  setDown: (down: boolean) => void;
} {
  const inner = new MemoryStore();
  let down = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (down && prop !== 'close') {
          return Promise.reject(
            Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6391'), {
              code: 'ECONNREFUSED',
            }),
          );
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, setDown: (d) => void (down = d) };
}
