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
import type { ChannelHandle } from './presence-channel';
import { backoffDelay, subscribeRetryDelay } from './schedule';
import type { ChannelData } from './types';

/** What a channel state needs from the service. */
export interface SharedChannelHost {
  readonly clock: PresenceClock;
  readonly config: ResolvedPresenceConfig;
  /** Batched `GET /presence/get`: the raw state, or `null` for a missing/forbidden channel. */
  fetchState(name: string): Promise<unknown>;
  bus(): PresenceBus;
  log(line: string): void;
  /** Nothing uses this state any more: drop it. */
  release(state: SharedChannel): void;
  /** A state was fetched from the server (first load or resync) and is followed from now on. */
  fetched(state: SharedChannel, data: ChannelData): void;
}

/**
 * Message-bus channel carrying the change messages of presence channel `name` (docs/protocol.md §5). The
 * client's copy of the server core's `presenceBusChannel`; a unit test holds the two equal.
 */
export function busChannelFor(name: string): string {
  return `/presence${name}`;
}

/**
 * Everything the `PresenceChannel` proxies of one name share: who of them is present, who is subscribed,
 * and — while anyone is subscribed — the channel data, kept current from the message bus.
 *
 * Lifecycle of the data: first subscriber → fetch (batched) or take `initialData` → follow the bus from
 * the snapshot's `last_message_id` (so nothing between snapshot and subscription is lost) → fold each
 * message in with the pure `applyMessage`; a gap, a resync the server asked for or anything unexpected
 * stops following, refetches and follows again from the new snapshot. Last subscriber gone → stop
 * following, forget the data.
 */
export class SharedChannel {
  readonly name: string;
  /** The current data; replaced whole on every change so one tracked field drives every template. */
  @tracked private current: ChannelData | undefined;
  /** Present handles and their activity rule (`null`: present as long as the page is open). */
  #present = new Map<ChannelHandle, ActiveOptions | null>();
  #subscribers = new Set<ChannelHandle>();

  #host: SharedChannelHost;
  #loading: Promise<void> | undefined;
  #stopFollowing: (() => void) | undefined;
  #resyncing = false;
  #resyncFailures = 0;
  /**
   * The one pending retry: of the first load while it cannot reach the server, or of a resync after
   * that. Never both: a resync only starts once a load brought data.
   */
  #retryTimer: Timer;
  #retry: (() => void) | undefined;
  /** Wakes a first load that waits to retry (on the timer, or at once by `#stop`). */
  #wakeLoad: (() => void) | undefined;
  /** Bumped whenever following stops, so answers to requests made before are ignored. */
  #generation = 0;

  constructor(name: string, host: SharedChannelHost) {
    this.name = name;
    this.#host = host;
    this.#retryTimer = new Timer(host.clock, () => this.#retry?.());
  }

  /** The channel data while anyone is subscribed and it has loaded. */
  get data(): ChannelData | undefined {
    return this.current;
  }

  get isUnused(): boolean {
    return this.#present.size === 0 && this.#subscribers.size === 0;
  }

  /** The activity rule of every present handle (`null`: present as long as the page is open). */
  presenceRules(): Iterable<ActiveOptions | null> {
    return this.#present.values();
  }

  /** `handle` entered, with its activity rule (replacing an earlier one). */
  addPresent(handle: ChannelHandle, rule: ActiveOptions | null): void {
    this.#present.set(handle, rule);
  }

  /** `handle` left. */
  removePresent(handle: ChannelHandle): void {
    this.#present.delete(handle);
    this.#releaseIfUnused();
  }

  /** The server refused presence here: no handle stays present, and each says why. */
  refusePresence(error: Error): void {
    for (const handle of this.#present.keys()) handle.refused(error);
    this.#present.clear();
    this.#releaseIfUnused();
  }

  /** The current user changed: every handle forgets its presence here. */
  forgetPresence(): void {
    for (const handle of [...this.#present.keys()]) handle.forgetPresence();
    this.#present.clear();
    this.#releaseIfUnused();
  }

  /**
   * Adds a subscriber and resolves once data is available. A fetch that can succeed later (server down,
   * 5xx, 408, 429) is retried every `subscribeRetryMs` (5 s) until it does, so a page opened while the
   * server was away fills in by itself when it is back. Rejects (and forgets every subscriber that was
   * waiting, so nothing half-subscribed stays behind) when the channel is missing or the fetch fails in a
   * way that retrying cannot fix.
   */
  async subscribe(handle: ChannelHandle, initialData?: unknown): Promise<void> {
    this.#subscribers.add(handle);
    if (this.data) return;
    this.#loading ??= this.#load(initialData);
    await this.#loading;
  }

  unsubscribe(handle: ChannelHandle): void {
    if (!this.#subscribers.delete(handle)) return;
    if (this.#subscribers.size === 0) this.#stop();
    this.#releaseIfUnused();
  }

  /** Stops following for good (service teardown). */
  destroy(): void {
    this.#subscribers.clear();
    this.#present.clear();
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
        this.#subscribers.clear();
        this.#stop();
        this.#releaseIfUnused();
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
        const delay = subscribeRetryDelay(this.#host.config);
        if (attempt === 1)
          this.#host.log(
            `PresenceChannel '${this.name}': ${(error as Error).message}; retrying every ${delay / 1000} s`,
          );
        await new Promise<void>((wake) => {
          this.#wakeLoad = wake;
          this.#retryIn(delay, wake);
        });
        this.#wakeLoad = undefined;
        if (generation !== this.#generation) return null;
      }
    }
  }

  #follow(data: ChannelData): void {
    this.current = data;
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
      this.current = outcome.data;
      return;
    }
    // A resync the server asked for is routine (the channel's maxUsersShown changed): nothing to report.
    if (outcome.type === 'gap') {
      this.#host.log(gapLogLine(this.name, outcome.gap));
    } else if (outcome.type === 'unexpected') {
      this.#host.log(
        `PresenceChannel '${this.name}' received an unexpected message (${outcome.reason}), resyncing...`,
      );
    }
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
      this.#retryIn(
        backoffDelay(this.#resyncFailures, this.#host.config),
        () => void this.#resync(),
      );
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

  /** The channel vanished or access was revoked while subscribed: every handle is unsubscribed. */
  #lost(error: Error): void {
    const handles = [...this.#subscribers];
    this.#subscribers.clear();
    this.#stop();
    for (const handle of handles) handle.lost(error);
    this.#releaseIfUnused();
  }

  #releaseIfUnused(): void {
    if (this.isUnused) this.#host.release(this);
  }

  /** Runs `retry` in `delay` ms, replacing any retry pending. */
  #retryIn(delay: number, retry: () => void): void {
    this.#retry = retry;
    this.#retryTimer.at(this.#host.clock.now() + delay);
  }

  #unfollow(): void {
    this.#stopFollowing?.();
    this.#stopFollowing = undefined;
  }

  #stop(): void {
    this.#generation++;
    this.#unfollow();
    this.#retryTimer.cancel();
    this.#retry = undefined;
    this.#wakeLoad?.();
    this.#resyncing = false;
    this.#resyncFailures = 0;
    this.#loading = undefined;
    this.current = undefined;
  }
}
