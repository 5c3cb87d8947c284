import { tracked } from '@glimmer/tracking';
import type { ActiveOptions } from './activity';
import { applyMessage } from './apply-message';
import { applySnapshot } from './apply-snapshot';
import type { PresenceBus } from './bus';
import { Timer, type PresenceClock } from './clock';
import type { ResolvedPresenceConfig } from './config';
import { gapLogLine } from './detect-gap';
import { PresenceChannelNotFound, PresenceRequestError } from './errors';
import { isRetryable } from './http';
import type { PresenceChannel } from './presence-channel';
import type { ChannelData } from './types';

/** What a channel state needs from the service. */
export interface ChannelStateHost {
  readonly clock: PresenceClock;
  readonly config: ResolvedPresenceConfig;
  /** Batched `GET /presence/get`: the raw state, or `null` for a missing/forbidden channel. */
  fetchState(name: string): Promise<unknown>;
  bus(): PresenceBus;
  log(line: string): void;
  /** Nothing uses this state any more: drop it. */
  release(state: ChannelState): void;
  /** A state was fetched from the server (first load or resync) and is followed from now on. */
  fetched(state: ChannelState, data: ChannelData): void;
}

/** Message-bus channel carrying the change messages of presence channel `name` (SPEC §1). */
export function busChannelFor(name: string): string {
  return `/presence${name}`;
}

/**
 * Everything the `PresenceChannel` proxies of one name share: who of them is present, who is subscribed,
 * and — while anyone is subscribed — the channel data, kept current from the message bus.
 *
 * Lifecycle of the data: first subscriber → fetch (batched) or take `initialData` → follow the bus from
 * the snapshot's `last_message_id` (so nothing between snapshot and subscription is lost) → fold each
 * message in with the pure `applyMessage`; a gap or anything unexpected stops following, refetches and
 * follows again from the new snapshot. Last subscriber gone → stop following, forget the data.
 */
export class ChannelState {
  readonly name: string;
  /** The current data; replaced whole on every change so one tracked field drives every template. */
  @tracked data: ChannelData | undefined;
  /** Present proxies and their activity rule (`null`: present as long as the page is open). */
  readonly present = new Map<PresenceChannel, ActiveOptions | null>();
  readonly subscribers = new Set<PresenceChannel>();

  #host: ChannelStateHost;
  #loading: Promise<void> | undefined;
  #stopFollowing: (() => void) | undefined;
  #resyncing = false;
  #resyncFailures = 0;
  #resyncTimer: Timer;
  /** Wakes a first load that waits to retry (on the timer, or at once by `#stop`). */
  #loadRetryTimer: Timer;
  #wakeLoad: (() => void) | undefined;
  /** Bumped whenever following stops, so answers to requests made before are ignored. */
  #generation = 0;

  constructor(name: string, host: ChannelStateHost) {
    this.name = name;
    this.#host = host;
    this.#resyncTimer = new Timer(host.clock, () => void this.#resync());
    this.#loadRetryTimer = new Timer(host.clock, () => this.#wakeLoad?.());
  }

  get isUnused(): boolean {
    return this.present.size === 0 && this.subscribers.size === 0;
  }

  /**
   * Adds a subscriber and resolves once data is available. A fetch that can succeed later (server down,
   * 5xx, 408, 429) is retried every `subscribeRetryMs` (5 s) until it does, so a page opened while the
   * server was away fills in by itself when it is back. Rejects (and forgets every subscriber that was
   * waiting, so nothing half-subscribed stays behind) when the channel is missing or the fetch fails in a
   * way that retrying cannot fix.
   */
  async subscribe(
    proxy: PresenceChannel,
    initialData?: unknown,
  ): Promise<void> {
    this.subscribers.add(proxy);
    if (this.data) return;
    this.#loading ??= this.#load(initialData);
    await this.#loading;
  }

  unsubscribe(proxy: PresenceChannel): void {
    if (!this.subscribers.delete(proxy)) return;
    if (this.subscribers.size === 0) this.#stop();
    if (this.isUnused) this.#host.release(this);
  }

  /** Stops following for good (service teardown). */
  destroy(): void {
    this.subscribers.clear();
    this.present.clear();
    this.#stop();
  }

  async #load(initialData: unknown): Promise<void> {
    const generation = this.#generation;
    try {
      const raw =
        initialData !== undefined
          ? initialData
          : await this.#fetchUntilAnswered(generation);
      if (generation !== this.#generation) return; // everybody unsubscribed meanwhile
      if (raw === null) throw new PresenceChannelNotFound(this.name);
      const data = this.#parse(raw);
      this.#follow(data);
      if (initialData === undefined) this.#host.fetched(this, data);
    } catch (error) {
      if (generation === this.#generation) {
        this.subscribers.clear();
        this.#stop();
        if (this.isUnused) this.#host.release(this);
      }
      throw error;
    } finally {
      if (generation === this.#generation) this.#loading = undefined;
    }
  }

  /**
   * The first fetch, retried every `subscribeRetryMs` while it fails in a way that can recover. Returns
   * early (with nothing) once everybody unsubscribed.
   */
  async #fetchUntilAnswered(generation: number): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#host.fetchState(this.name);
      } catch (error) {
        if (generation !== this.#generation) return null;
        if (!isRetryable(error)) throw error;
        const { subscribeRetryMs } = this.#host.config;
        if (attempt === 1)
          this.#host.log(
            `PresenceChannel '${this.name}': ${(error as Error).message}; retrying every ${subscribeRetryMs / 1000} s`,
          );
        await new Promise<void>((wake) => {
          this.#wakeLoad = wake;
          this.#loadRetryTimer.at(this.#host.clock.now() + subscribeRetryMs);
        });
        this.#wakeLoad = undefined;
        if (generation !== this.#generation) return null;
      }
    }
  }

  #follow(data: ChannelData): void {
    this.data = data;
    const generation = this.#generation;
    this.#stopFollowing = this.#host.bus().subscribe(
      busChannelFor(this.name),
      (payload, messageId) => {
        if (generation === this.#generation) this.#receive(payload, messageId);
      },
      data.lastMessageId,
    );
  }

  #receive(payload: unknown, messageId: number): void {
    if (!this.data || this.#resyncing) return;
    const outcome = applyMessage(this.data, messageId, payload);
    if (outcome.type === 'applied') {
      this.data = outcome.data;
      return;
    }
    this.#host.log(
      outcome.type === 'gap'
        ? gapLogLine(this.name, outcome.gap)
        : `PresenceChannel '${this.name}' received an unexpected message (${outcome.reason}), resyncing...`,
    );
    this.#unfollow();
    void this.#resync();
  }

  async #resync(): Promise<void> {
    this.#resyncing = true;
    const generation = this.#generation;
    try {
      const raw = await this.#host.fetchState(this.name);
      if (generation !== this.#generation) return;
      if (raw === null)
        return this.#lost(new PresenceChannelNotFound(this.name));
      const data = this.#parse(raw);
      this.#resyncing = false;
      this.#resyncFailures = 0;
      this.#follow(data);
      this.#host.fetched(this, data);
    } catch {
      if (generation !== this.#generation) return;
      // Keep showing the last known data and try again later; a refetch is the only way back in sync.
      this.#resyncFailures++;
      const { backoffMinMs, backoffMaxMs } = this.#host.config;
      const delay = Math.min(
        backoffMaxMs,
        backoffMinMs * 2 ** (this.#resyncFailures - 1),
      );
      this.#resyncTimer.at(this.#host.clock.now() + delay);
    }
  }

  /** The data of a state the server sent; throws when it is not a channel state at all. */
  #parse(raw: unknown): ChannelData {
    const data = applySnapshot(raw);
    if (!data) {
      throw new PresenceRequestError(
        `The state of presence channel '${this.name}' does not have the expected shape ({ users?, count, last_message_id })`,
        200,
      );
    }
    return data;
  }

  /** The channel vanished or access was revoked while subscribed: every proxy is unsubscribed. */
  #lost(error: Error): void {
    const proxies = [...this.subscribers];
    this.subscribers.clear();
    this.#stop();
    for (const proxy of proxies) proxy._lost(error);
    if (this.isUnused) this.#host.release(this);
  }

  #unfollow(): void {
    this.#stopFollowing?.();
    this.#stopFollowing = undefined;
  }

  #stop(): void {
    this.#generation++;
    this.#unfollow();
    this.#resyncTimer.cancel();
    this.#loadRetryTimer.cancel();
    this.#wakeLoad?.();
    this.#resyncing = false;
    this.#resyncFailures = 0;
    this.#loading = undefined;
    this.data = undefined;
  }
}
