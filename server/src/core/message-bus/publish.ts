import type { PresenceStore } from '../store.js';
import type { Audience, BusMessage } from '../types.js';
import { normaliseAudience } from './audience.js';
import { isValidBusChannel, MAX_BUS_CHANNEL_LENGTH } from './poll-request.js';
import { isPresenceBusChannel } from './wire.js';

/**
 * The one rule for messages host code publishes (`PresenceCore.publish`, `MessageBus.publish` and the
 * server's `publish` all come here): the channel must be a bus channel a client can poll
 * ({@link isValidBusChannel}: `/…`, at most {@link MAX_BUS_CHANNEL_LENGTH} characters, no control
 * characters, not `/__status`) outside the reserved `/presence/…` namespace, and `data` a JSON value. It is
 * stored as its JSON copy, so later mutations of the object do not leak into the backlog.
 *
 * @throws {TypeError} (as a rejection) for an invalid channel name, non-JSON data or a malformed audience.
 */
export async function publishHostMessage(
  store: PresenceStore,
  channel: string,
  data: unknown,
  audience: Audience | null | undefined,
  now: number,
): Promise<BusMessage> {
  if (!isValidBusChannel(channel)) {
    throw new TypeError(
      `publish: invalid channel ${JSON.stringify(channel)}; use a name starting with "/" (at most ${MAX_BUS_CHANNEL_LENGTH} characters, no control characters, not "/__status")`,
    );
  }
  if (isPresenceBusChannel(channel)) {
    throw new TypeError(
      `publish: ${channel} is reserved for presence change messages; publish those through the presence core (present/leave)`,
    );
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (error) {
    throw new TypeError(
      `publish: data for ${channel} is not JSON-serialisable (${String(error)})`,
    );
  }
  if (json === undefined)
    throw new TypeError(
      `publish: data for ${channel} must be a JSON value, not undefined`,
    );
  return store.publish(
    channel,
    JSON.parse(json) as unknown,
    normaliseAudience(audience),
    now,
  );
}
