import type { Cluster, Redis } from 'ioredis';

import { decodeOutbox, nextVisit } from '../core/events/schedule.js';
import type { EventLog, PendingEvents } from '../core/store.js';
import type { RedisKeys } from './keys.js';
import type { RunScript } from './scripts.js';

/** See `refreshRecording`. */
const CONSUMER_GRACE_MS = 60_000;

/**
 * The RedisStore's {@link EventLog}. Events live in each presence channel's own outbox
 * (`{…}p|events`, written by the presence scripts in the same step as the change); the index shards
 * (`events|<n>`, one per sweep shard) say which channels to visit, and a lease per shard
 * (events-lease.lua) says which process visits them. Nothing here touches two slots in one command, so it
 * runs unchanged on a Redis Cluster.
 */
export class RedisEventLog implements EventLog {
  readonly shards: number;
  readonly #redis: Redis | Cluster;
  readonly #keys: RedisKeys;
  readonly #run: RunScript;
  /** Announced by some process (as last read), or announced by this one. */
  #shared = false;
  #lastSeen = -Infinity;
  #consuming = false;

  constructor(redis: Redis | Cluster, keys: RedisKeys, run: RunScript) {
    this.#redis = redis;
    this.#keys = keys;
    this.#run = run;
    this.shards = keys.sweepShards;
  }

  get recording(): boolean {
    return this.#consuming || this.#shared;
  }

  async announceConsumer(now: number, ttlMs: number): Promise<void> {
    this.#consuming = true;
    await this.#redis.set(
      this.#keys.eventConsumers(),
      String(now),
      'PX',
      Math.max(1, Math.round(ttlMs)),
    );
  }

  async withdrawConsumer(): Promise<void> {
    // The announcement itself stays until it lapses: other consumers may still be running.
    this.#consuming = false;
    return Promise.resolve();
  }

  /**
   * Reads the announcement. Once seen, this process keeps recording for {@link CONSUMER_GRACE_MS} after it
   * last saw it: a Redis restart (or failover) that lost the key must not stop the recording until a
   * consumer announces itself again (every 20 s).
   */
  async refreshRecording(now: number): Promise<boolean> {
    if ((await this.#redis.exists(this.#keys.eventConsumers())) === 1)
      this.#lastSeen = now;
    this.#shared = now - this.#lastSeen < CONSUMER_GRACE_MS;
    return this.recording;
  }

  async lease(
    shard: number,
    owner: string,
    leaseMs: number,
    _now: number,
    release = false,
  ): Promise<boolean> {
    const held = await this.#run(
      'lease',
      [this.#keys.eventLease(shard)],
      [owner, Math.max(1, Math.round(leaseMs)), release ? '1' : '0'],
    );
    return held === 1;
  }

  async readDue(
    shard: number,
    now: number,
    maxChannels: number,
    maxEvents: number,
  ): Promise<PendingEvents[]> {
    const entries = await this.#redis.zrangebyscore(
      this.#keys.eventShard(shard),
      '-inf',
      now,
      'WITHSCORES',
      'LIMIT',
      0,
      maxChannels,
    );
    const reads: Promise<PendingEvents>[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      const channel = entries[i]!;
      const visited = Number(entries[i + 1]);
      reads.push(
        this.#redis
          .zrange(this.#keys.presence(channel).events, 0, String(maxEvents - 1))
          .then((outbox) => decodeOutbox(channel, visited, outbox)),
      );
    }
    return Promise.all(reads);
  }

  async ack(
    shard: number,
    pending: readonly PendingEvents[],
    now: number,
  ): Promise<void> {
    const index = this.#keys.eventShard(shard);
    await Promise.all(
      pending.map(async ({ channel, visited, lastSeq }) => {
        // Delivered events go first: a crash after this and before the re-score only costs a visit.
        if (lastSeq > 0)
          await this.#redis.zremrangebyscore(
            this.#keys.presence(channel).events,
            '-inf',
            String(lastSeq),
          );
        const next = nextVisit(visited, lastSeq > 0, now);
        await this.#run(
          'rescore',
          [index],
          [channel, String(visited), next === null ? '' : String(next)],
        );
      }),
    );
  }
}
