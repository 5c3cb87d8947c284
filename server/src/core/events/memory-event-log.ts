import type {
  EventLog,
  PendingEvents,
  PresenceEvent,
  PresenceEventName,
} from '../store.js';
import { eventId, nextVisit } from './schedule.js';

/** Most undelivered events kept per channel (as the RedisStore's EVENTS_CAP). */
const EVENTS_CAP = 100_000;

/**
 * The MemoryStore's {@link EventLog}: one process, so one shard, and the outbox is a plain array per
 * channel that the store appends to in the same synchronous step as the state change. Leases still exist
 * (several consumers may share one store in a process, e.g. two servers in a test) and follow the same
 * rules as on Redis, on the store's clock. No timers, no Node APIs (it runs in the browser fake too).
 */
export class MemoryEventLog implements EventLog {
  readonly shards = 1;
  #consumers = 0;
  #sharedUntil = -Infinity;
  #lastNow = -Infinity;
  /** Channel → its last event number and its undelivered events, each with its number. */
  readonly #outboxes = new Map<
    string,
    { seq: number; events: { seq: number; event: PresenceEvent }[] }
  >();
  /** Channel → when to visit it (the same schedule as the Redis index: see nextVisit). */
  readonly #index = new Map<string, number>();
  readonly #leases = new Map<number, { owner: string; until: number }>();

  get recording(): boolean {
    return this.#consumers > 0 || this.#sharedUntil > this.#lastNow;
  }

  /** Called by the store with each state change's `now`, so announcements lapse on the store's clock. */
  observe(now: number): void {
    if (now > this.#lastNow) this.#lastNow = now;
  }

  /**
   * Records events of one change of `channel` (the store calls it in the same step as the change, and
   * only while {@link recording}).
   */
  record(
    channel: string,
    events: readonly (readonly [PresenceEventName, number])[],
    now: number,
  ): void {
    if (events.length === 0) return;
    let outbox = this.#outboxes.get(channel);
    if (!outbox) {
      outbox = { seq: now * 1000, events: [] };
      this.#outboxes.set(channel, outbox);
    }
    for (const [name, userId] of events) {
      outbox.seq += 1;
      outbox.events.push({
        seq: outbox.seq,
        event: {
          id: eventId(channel, outbox.seq),
          name,
          channel,
          userId,
          at: now,
        },
      });
    }
    if (outbox.events.length > EVENTS_CAP)
      outbox.events.splice(0, outbox.events.length - EVENTS_CAP);
    this.#index.set(channel, now);
  }

  announceConsumer(now: number, ttlMs: number): Promise<void> {
    this.observe(now);
    this.#consumers = Math.max(this.#consumers, 1);
    this.#sharedUntil = Math.max(this.#sharedUntil, now + ttlMs);
    return Promise.resolve();
  }

  withdrawConsumer(): Promise<void> {
    this.#consumers = 0;
    return Promise.resolve();
  }

  refreshRecording(now: number): Promise<boolean> {
    this.observe(now);
    return Promise.resolve(this.recording);
  }

  lease(
    shard: number,
    owner: string,
    leaseMs: number,
    now: number,
    release = false,
  ): Promise<boolean> {
    const held = this.#leases.get(shard);
    const free = !held || held.until <= now;
    if (release) {
      if (held?.owner === owner) this.#leases.delete(shard);
      return Promise.resolve(false);
    }
    if (!free && held.owner !== owner) return Promise.resolve(false);
    this.#leases.set(shard, { owner, until: now + leaseMs });
    return Promise.resolve(true);
  }

  readDue(
    _shard: number,
    now: number,
    maxChannels: number,
    maxEvents: number,
  ): Promise<PendingEvents[]> {
    const due = [...this.#index]
      .filter(([, at]) => at <= now)
      .sort((a, b) => a[1] - b[1])
      .slice(0, maxChannels);
    return Promise.resolve(
      due.map(([channel, visited]) => {
        const entries = (this.#outboxes.get(channel)?.events ?? []).slice(
          0,
          maxEvents,
        );
        return {
          channel,
          visited,
          events: entries.map((entry) => entry.event),
          lastSeq: entries.at(-1)?.seq ?? 0,
        };
      }),
    );
  }

  ack(
    _shard: number,
    pending: readonly PendingEvents[],
    now: number,
  ): Promise<void> {
    for (const { channel, visited, lastSeq } of pending) {
      const outbox = this.#outboxes.get(channel);
      if (outbox && lastSeq > 0) {
        const keep = outbox.events.findIndex((entry) => entry.seq > lastSeq);
        outbox.events.splice(0, keep === -1 ? outbox.events.length : keep);
      }
      if (this.#index.get(channel) !== visited) continue; // re-indexed meanwhile: that entry wins
      const next = nextVisit(visited, lastSeq > 0, now);
      if (next === null) {
        this.#index.delete(channel);
        if (outbox && outbox.events.length === 0)
          this.#outboxes.delete(channel);
      } else this.#index.set(channel, next);
    }
    return Promise.resolve();
  }
}
