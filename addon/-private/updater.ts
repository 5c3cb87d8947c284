import { isRecord } from './apply-snapshot';
import { Timer, type PresenceClock } from './clock';
import type { ResolvedPresenceConfig } from './config';
import { PresenceChannelFull, PresenceChannelNotFound } from './errors';
import { presenceRequest } from './http';
import {
  backoffDelay,
  isHeartbeatDue,
  nextUpdateAt,
  rateLimitDelay,
  settledWaitsForUpdate,
} from './schedule';
import { updateWaiter } from './waiters';

/** What the updater needs from the service. */
export interface UpdaterHost {
  readonly clock: PresenceClock;
  readonly config: ResolvedPresenceConfig;
  clientId(): string;
  /** The channels the server should have this client present in, right now (entered and active). */
  desiredPresent(): ReadonlySet<string>;
  /** The server refused presence in `name` (answered `false`, or a request error that retrying cannot fix). */
  presenceRefused(name: string, error: Error): void;
  /** The CSRF token to send, if any. */
  csrfToken(): string | undefined;
  /** The bearer token to send as `Authorization`, if any (`presence.setAuthToken`). */
  authToken(): string | undefined;
}

interface Deferred {
  resolve(): void;
  reject(error: Error): void;
}

type Waiters = Map<string, Deferred[]>;

/** Where an update answer says why a channel answered `false` (docs/protocol.md §4). */
const UPDATE_REASONS_KEY = '_reasons';

/**
 * The error for a channel the server answered `false` for: {@link PresenceChannelFull} when its
 * `_reasons` entry is `"full"`, otherwise (no reason, an unknown one, a server that sends none)
 * {@link PresenceChannelNotFound}.
 */
function refusal(name: string, reasons: unknown): Error {
  const reason =
    isRecord(reasons) && Object.prototype.hasOwnProperty.call(reasons, name)
      ? reasons[name]
      : undefined;
  return reason === 'full'
    ? new PresenceChannelFull(name)
    : new PresenceChannelNotFound(name);
}

/** The server refuses more than 50 entries in `present_channels` or `leave_channels` (docs/protocol.md §4). */
export const MAX_CHANNELS_PER_UPDATE = 50;

/**
 * Keeps the server's view of "where is this client present" in line with the app's, with as few
 * requests as possible (docs/protocol.md §7):
 *
 * - Changes are not sent one by one. Every request carries the whole desired state: all channels that
 *   should be present in `present_channels` (which doubles as the heartbeat) and, in `leave_channels`,
 *   those the server may still have and should not. So only the last event per channel counts, and an
 *   enter followed by a leave before anything was sent costs nothing.
 * - A change is sent `debounceMs` after the last one, at most once per `throttleMs`, never two requests
 *   at once; while anything is present a heartbeat goes out every `heartbeatMs`; an update with nothing
 *   to say is not sent.
 * - 429 waits `extras.wait_seconds` (else `rateLimitWaitMs`); network errors, 5xx and 408 back off
 *   exponentially from `backoffMinMs` to `backoffMaxMs`. Both keep every pending change and promise.
 *   Other 4xx (403 `not_logged_in`, 400) cannot succeed on retry: their promises reject.
 * - `enter`/`leave` promises settle when the server has answered for that channel — or at once when no
 *   request is needed (another proxy already entered it, or it never reached the server).
 */
export class Updater {
  #host: UpdaterHost;
  /** The server answered `true` for these and has not been told to leave them. */
  #confirmed = new Set<string>();
  /** Sent as present in a request whose answer was lost: the server may or may not have them. */
  #maybe = new Set<string>();
  /** When each confirmed channel was last sent as present: drives heartbeats past 50 channels. */
  #reportedAt = new Map<string, number>();
  #enterWaiters: Waiters = new Map();
  #leaveWaiters: Waiters = new Map();
  #dirty = false;
  /** When the oldest unsent change happened: caps the debounce so a stream of changes still goes out. */
  #dirtySince = -Infinity;
  #lastChangeAt = -Infinity;
  #lastSentAt = -Infinity;
  #retryAt = -Infinity;
  #failures = 0;
  #inFlight: { present: readonly string[] } | undefined;
  #timer: Timer;
  #scheduledToken: unknown;
  #destroyed = false;

  constructor(host: UpdaterHost) {
    this.#host = host;
    this.#timer = new Timer(host.clock, () => this.#flush());
  }

  /** Channels the server is known or may be thought to hold this client present in. */
  get serverPresent(): ReadonlySet<string> {
    return new Set([
      ...this.#confirmed,
      ...this.#maybe,
      ...(this.#inFlight?.present ?? []),
    ]);
  }

  /** A proxy entered `name` (already reflected by `desiredPresent`). Settles with the server's answer. */
  enter(name: string): Promise<void> {
    if (this.#confirmed.has(name) && !this.#inFlight) return Promise.resolve();
    return this.#wait(this.#enterWaiters, name);
  }

  /** A proxy left `name` (already reflected by `desiredPresent`). */
  leave(name: string): Promise<void> {
    return this.#wait(this.#leaveWaiters, name);
  }

  /** The desired state may have changed (activity, a refused channel…): schedule an update. */
  changed(): void {
    if (this.#destroyed) return;
    this.#markDirty();
    this.#lastChangeAt = this.#host.clock.now();
    this.#schedule();
  }

  #markDirty(): void {
    if (!this.#dirty) this.#dirtySince = this.#host.clock.now();
    this.#dirty = true;
  }

  /**
   * Leaves every channel the server may hold this client in, at once, and from then on assumes it holds
   * nothing (`resume()` re-enters what is still wanted, e.g. when a page comes back from the back/forward
   * cache).
   *
   * - `'beacon'` (page unload): one `navigator.sendBeacon`. A beacon cannot carry headers, so the CSRF
   *   token (when configured) travels as a form field; the server's Origin check covers the rest. With a
   *   bearer token (`setAuthToken`) a `keepalive` fetch carries it instead.
   * - `'fetch'` (sign-out): an ordinary `keepalive` request, which test servers can see.
   */
  leaveAll(transport: 'beacon' | 'fetch'): void {
    const names = [...this.serverPresent];
    this.#timer.cancel();
    this.#releaseScheduledWaiter();
    this.#confirmed.clear();
    this.#maybe.clear();
    this.#reportedAt.clear();
    if (names.length === 0 || this.#destroyed) return;
    for (let i = 0; i < names.length; i += MAX_CHANNELS_PER_UPDATE) {
      this.#sendLeaveNow(
        names.slice(i, i + MAX_CHANNELS_PER_UPDATE),
        transport,
      );
    }
  }

  #sendLeaveNow(names: string[], transport: 'beacon' | 'fetch'): void {
    const { config } = this.#host;
    const body = this.#updateBody([], names);
    // A beacon cannot carry headers, so the CSRF token also goes in the body here.
    const token = this.#host.csrfToken();
    if (token) body.append(config.csrf.fieldName, token);
    const url = `${config.baseUrl}presence/update`;
    // A beacon cannot carry the bearer token either: with one, the keepalive fetch below does the job.
    const canBeacon =
      typeof navigator !== 'undefined' &&
      typeof navigator.sendBeacon === 'function' &&
      this.#host.authToken() === undefined;
    if (transport === 'beacon' && canBeacon) {
      navigator.sendBeacon(url, body);
      return;
    }
    const waiter = updateWaiter.beginAsync();
    // keepalive lets the request outlive the page, like a beacon. Best effort: the server's timeout
    // removes us anyway if it is lost.
    void presenceRequest(url, {
      method: 'POST',
      body: body.toString(),
      headers: this.#headers(),
      keepalive: true,
      credentials: config.credentials,
    }).finally(() => updateWaiter.endAsync(waiter));
  }

  /** The form body of `POST /presence/update` (docs/protocol.md §4). */
  #updateBody(present: string[], leaves: string[]): URLSearchParams {
    const body = new URLSearchParams();
    body.append('client_id', this.#host.clientId());
    for (const name of present) body.append('present_channels[]', name);
    for (const name of leaves) body.append('leave_channels[]', name);
    return body;
  }

  /** Drops what we know of our presence in `name` (left, refused, or failed fatally). */
  #forget(name: string): void {
    this.#confirmed.delete(name);
    this.#maybe.delete(name);
    this.#reportedAt.delete(name);
  }

  #headers(): Record<string, string> {
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8',
    };
    const token = this.#host.csrfToken();
    if (token) headers[this.#host.config.csrf.headerName] = token;
    const bearer = this.#host.authToken();
    if (bearer) headers['Authorization'] = `Bearer ${bearer}`;
    return headers;
  }

  /**
   * The server does not have this client in `name` although it confirmed it (it lost its state: a
   * restart of a server on the memory store, Redis restarted empty): send it as a new enter now instead
   * of at the next heartbeat.
   */
  reassert(name: string): void {
    if (!this.#confirmed.delete(name)) return;
    this.#reportedAt.delete(name);
    this.changed();
  }

  /** The page is shown again (back/forward cache): tell the server what is present. */
  resume(): void {
    this.changed();
  }

  /**
   * Forget everything without talking to the server, rejecting pending promises with `error` (used on
   * sign-out, after `leaveAll` told the server to drop us).
   */
  reset(error: Error): void {
    this.#timer.cancel();
    this.#releaseScheduledWaiter();
    this.#rejectAll(this.#enterWaiters, error);
    this.#rejectAll(this.#leaveWaiters, error);
    this.#confirmed.clear();
    this.#maybe.clear();
    this.#reportedAt.clear();
    this.#dirty = false;
  }

  destroy(): void {
    this.#destroyed = true;
    this.#timer.cancel();
    this.#releaseScheduledWaiter();
    // Pending promises stay pending: the app that awaited them is being torn down too, and rejecting
    // them would only produce unhandled rejections during teardown.
    this.#enterWaiters.clear();
    this.#leaveWaiters.clear();
  }

  #wait(waiters: Waiters, name: string): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => {
      const list = waiters.get(name);
      if (list) list.push({ resolve, reject });
      else waiters.set(name, [{ resolve, reject }]);
    });
    this.changed();
    return promise;
  }

  #schedule(): void {
    if (this.#destroyed || this.#inFlight) return;
    const { config, clock } = this.#host;
    const now = clock.now();
    const at = nextUpdateAt(
      {
        dirty: this.#dirty,
        oldestReportAt: this.#oldestReportAt(),
        unconfirmed: this.#maybe.size > 0,
      },
      {
        lastChangeAt: this.#lastChangeAt,
        dirtySince: this.#dirtySince,
        lastSentAt: this.#lastSentAt,
        retryAt: this.#retryAt,
      },
      config,
    );
    if (at === undefined) this.#timer.cancel();
    else this.#timer.at(at);
    const waits = settledWaitsForUpdate(
      {
        dirty: this.#dirty,
        retryAt: this.#retryAt,
        at,
        manualClock: clock.manual === true,
      },
      now,
    );
    if (waits) this.#holdScheduledWaiter();
    else this.#releaseScheduledWaiter();
  }

  /** When the confirmed channel reported longest ago was last sent; `undefined` when none is confirmed. */
  #oldestReportAt(): number | undefined {
    if (this.#confirmed.size === 0) return undefined;
    return Math.min(
      ...[...this.#confirmed].map(
        (name) => this.#reportedAt.get(name) ?? this.#lastSentAt,
      ),
    );
  }

  #flush(): void {
    if (this.#destroyed || this.#inFlight) return;
    const { config, clock } = this.#host;
    const now = clock.now();
    if (this.#retryAt > now) return this.#schedule();

    const desired = this.#host.desiredPresent();
    const present = [...desired];
    const leaves = [...new Set([...this.#confirmed, ...this.#maybe])].filter(
      (name) => !desired.has(name),
    );
    const newPresents = present.filter((name) => !this.#confirmed.has(name));
    const lastReported = (name: string) =>
      this.#reportedAt.get(name) ?? -Infinity;
    const isDue = (name: string) =>
      isHeartbeatDue(lastReported(name), now, config);
    const heartbeatDue = present.some(
      (name) => this.#confirmed.has(name) && isDue(name),
    );
    this.#dirty = false;

    // Promises that need no request: the channel is not wanted any more (left again, or the user is
    // inactive), is already confirmed, or a leave that never reached the server.
    for (const [name, list] of this.#enterWaiters) {
      if (
        !desired.has(name) ||
        (this.#confirmed.has(name) && !newPresents.includes(name))
      ) {
        this.#enterWaiters.delete(name);
        for (const waiter of list) waiter.resolve();
      }
    }
    for (const [name, list] of this.#leaveWaiters) {
      if (!leaves.includes(name)) {
        this.#leaveWaiters.delete(name);
        for (const waiter of list) waiter.resolve();
      }
    }

    if (leaves.length === 0 && newPresents.length === 0 && !heartbeatDue) {
      this.#schedule();
      return;
    }
    // Every present channel rides along (that is the heartbeat), up to the server's limit per request;
    // past it, new channels go first, then those reported longest ago, and the rest follows next.
    const confirmed = present
      .filter((name) => this.#confirmed.has(name))
      .sort((a, b) => lastReported(a) - lastReported(b));
    const ordered = [...newPresents, ...confirmed];
    const sendPresent =
      present.length <= MAX_CHANNELS_PER_UPDATE
        ? present
        : ordered.slice(0, MAX_CHANNELS_PER_UPDATE);
    const sendLeaves = leaves.slice(0, MAX_CHANNELS_PER_UPDATE);
    const more =
      leaves.length > MAX_CHANNELS_PER_UPDATE ||
      ordered
        .slice(MAX_CHANNELS_PER_UPDATE)
        .some((name) => !this.#confirmed.has(name) || isDue(name));
    void this.#send(sendPresent, sendLeaves, more);
  }

  async #send(
    present: string[],
    leaves: string[],
    more: boolean,
  ): Promise<void> {
    const { config, clock } = this.#host;
    const sentAt = clock.now();
    const enterWaiters = take(this.#enterWaiters, present);
    const leaveWaiters = take(this.#leaveWaiters, leaves);
    this.#inFlight = { present };
    this.#lastSentAt = sentAt;
    for (const name of leaves) this.#forget(name);
    this.#timer.cancel();
    this.#releaseScheduledWaiter();

    const token = updateWaiter.beginAsync();
    try {
      const body = this.#updateBody(present, leaves);
      const headers = this.#headers();

      const outcome = await presenceRequest(
        `${config.baseUrl}presence/update`,
        {
          method: 'POST',
          body: body.toString(),
          headers,
          credentials: config.credentials,
        },
      );
      this.#inFlight = undefined;
      if (this.#destroyed) return;

      if (outcome.kind === 'ok') {
        this.#failures = 0;
        this.#retryAt = -Infinity;
        const reasons = outcome.body[UPDATE_REASONS_KEY];
        for (const name of present) {
          if (outcome.body[name] === false) {
            this.#forget(name);
            const error = refusal(name, reasons);
            for (const waiter of enterWaiters.get(name) ?? [])
              waiter.reject(error);
            // Also rejects enters queued meanwhile: they would get the same answer.
            for (const waiter of this.#enterWaiters.get(name) ?? [])
              waiter.reject(error);
            this.#enterWaiters.delete(name);
            this.#host.presenceRefused(name, error);
          } else {
            this.#confirmed.add(name);
            this.#maybe.delete(name);
            this.#reportedAt.set(name, sentAt);
            for (const waiter of enterWaiters.get(name) ?? []) waiter.resolve();
          }
        }
        for (const list of leaveWaiters.values())
          for (const waiter of list) waiter.resolve();
        if (more) this.#markDirty();
      } else if (outcome.kind === 'fatal') {
        for (const name of present) {
          this.#forget(name);
          this.#host.presenceRefused(name, outcome.error);
        }
        this.#rejectAll(enterWaiters, outcome.error);
        this.#rejectAll(leaveWaiters, outcome.error);
      } else {
        // Keep everything for the retry: the server may or may not have applied this request.
        for (const name of present)
          if (!this.#confirmed.has(name)) this.#maybe.add(name);
        for (const name of leaves) this.#maybe.add(name);
        putBack(this.#enterWaiters, enterWaiters);
        putBack(this.#leaveWaiters, leaveWaiters);
        if (outcome.kind === 'rate-limited') {
          this.#retryAt = clock.now() + rateLimitDelay(outcome.waitMs, config);
        } else {
          this.#failures++;
          this.#retryAt = clock.now() + backoffDelay(this.#failures, config);
        }
        this.#markDirty();
      }
      this.#schedule();
    } finally {
      this.#inFlight = undefined;
      updateWaiter.endAsync(token);
    }
  }

  #rejectAll(waiters: Waiters, error: Error): void {
    for (const list of waiters.values())
      for (const waiter of list) waiter.reject(error);
    waiters.clear();
  }

  #holdScheduledWaiter(): void {
    if (this.#scheduledToken === undefined)
      this.#scheduledToken = updateWaiter.beginAsync();
  }

  #releaseScheduledWaiter(): void {
    if (this.#scheduledToken === undefined) return;
    updateWaiter.endAsync(this.#scheduledToken);
    this.#scheduledToken = undefined;
  }
}

function take(waiters: Waiters, names: readonly string[]): Waiters {
  const taken: Waiters = new Map();
  for (const name of names) {
    const list = waiters.get(name);
    if (list) {
      taken.set(name, list);
      waiters.delete(name);
    }
  }
  return taken;
}

function putBack(into: Waiters, from: Waiters): void {
  for (const [name, list] of from)
    into.set(name, [...list, ...(into.get(name) ?? [])]);
}
