/**
 * The logging hook of the core. The server passes its structured logger; the default writes to `console`,
 * which exists in Node and in the browser.
 */
export interface Logger {
  /** Something failed on the server side (a prefix callback threw, a sweep failed). */
  error(message: string, details?: Record<string, unknown>): void;
}

/** The default {@link Logger}: `console.error`. */
export const consoleLogger: Logger = {
  error(message, details) {
    if (details === undefined) console.error(`[ember-presence] ${message}`);
    else console.error(`[ember-presence] ${message}`, details);
  },
};
