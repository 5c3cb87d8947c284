// A webhook receiver for ember-presence: checks the signature, refuses replays, skips events it has
// already handled (deliveries are at least once), and answers 500 when handling fails so that the
// server tries again later with the same event ids. Node 18+, no dependencies.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

/** Whether `header` (X-Presence-Signature) signs the raw request body with `secret`. */
export function isSigned(secret, rawBody, header) {
  const expected = Buffer.from(
    `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`,
  );
  const given = Buffer.from(String(header ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * An HTTP server that calls `onEvent({ id, name, channel, user_id, at })` once per event id. Keep the
 * ids in your database in production (a unique index), not in memory.
 */
export function createReceiver({ secret, onEvent, maxSkewMs = 5 * 60_000 }) {
  const handled = new Set();
  return createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      if (!isSigned(secret, raw, req.headers['x-presence-signature'])) {
        res.statusCode = 401; // not from your presence server
        return res.end();
      }
      const { time_ms, events } = JSON.parse(raw.toString('utf8'));
      if (Math.abs(Date.now() - time_ms) > maxSkewMs) {
        res.statusCode = 400; // an old POST sent again by someone else
        return res.end();
      }
      try {
        for (const event of events) {
          if (handled.has(event.id)) continue;
          await onEvent(event);
          handled.add(event.id);
        }
        res.end();
      } catch {
        res.statusCode = 500; // retried later, with the same ids
        res.end();
      }
    });
  });
}
