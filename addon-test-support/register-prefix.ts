import { presenceTestState } from './-private/context';
import type { PrefixCallback } from 'ember-presence/test-support/-private/core';

/**
 * Registers a just-in-time config callback for every channel of a prefix, exactly as the real server's
 * `registerPrefix` does (return a config, or `null` for "no such channel").
 *
 * @example registerPrefix('topic', (name) => (name.endsWith('/reply') ? { public: true } : null));
 */
export function registerPrefix(prefix: string, callback: PrefixCallback): void {
  presenceTestState('registerPrefix').server.registerPrefix(prefix, callback);
}
