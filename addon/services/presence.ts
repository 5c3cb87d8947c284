import Service from '@ember/service';
import { tracked } from '@glimmer/tracking';
import type Owner from '@ember/owner';
import {
  associateDestroyableChild,
  registerDestructor,
} from '@ember/destroyable';
import { ActivityMonitor, type ActiveOptions } from '../-private/activity';
import { createMessageBusAdapter, type PresenceBus } from '../-private/bus';
import {
  SharedChannel,
  type SharedChannelHost,
} from '../-private/shared-channel';
import { Timer, systemClock, type PresenceClock } from '../-private/clock';
import {
  resolveConfig,
  type PresenceConfig,
  type ResolvedPresenceConfig,
} from '../-private/config';
import {
  PresenceChannel,
  type ChannelHost,
} from '../-private/presence-channel';
import { StateFetcher } from '../-private/state-fetcher';
import type { ChannelData } from '../-private/types';
import { Updater } from '../-private/updater';

/** Options of `presence.getChannel`. */
export interface GetChannelOptions {
  /**
   * Ties the handle's lifetime to this object (a component, a route, any destroyable): when the owner is
   * destroyed, the handle leaves and unsubscribes by itself.
   */
  owner?: object;
}

/** The signed-in user as far as presence cares; only the id is used. */
export interface PresenceCurrentUser {
  id: number | string;
}

/**
 * Real-time presence: who is in a channel, and being in one.
 *
 * @example
 * import Component from '@glimmer/component';
 * import { service } from '@ember/service';
 * import type PresenceService from 'ember-presence/services/presence';
 *
 * export default class WhoIsReplying extends Component<{ Args: { topicId: number } }> {
 *   @service declare presence: PresenceService;
 *   channel: PresenceChannel;
 *
 *   constructor(owner: Owner, args: { topicId: number }) {
 *     super(owner, args);
 *     // `owner: this`: left and unsubscribed automatically when the component is destroyed.
 *     this.channel = this.presence.getChannel(`/topic/${args.topicId}/reply`, { owner: this });
 *     void this.channel.subscribe();
 *   }
 * }
 * // <template>{{this.channel.count}} replying</template>
 *
 * Anonymous visitors: call `setCurrentUser(null)`; they can then subscribe to public channels, and
 * `enter`/`leave` throw. Until told otherwise the service assumes a signed-in user and lets the server
 * decide (a 403 rejects the `enter`).
 *
 * Replaceable edges (for tests and test-support), registered with `instantiate: false` before the
 * service is first looked up: `ember-presence:bus` (a `PresenceBus`), `ember-presence:clock` (a
 * `PresenceClock`), `ember-presence:config` (a `PresenceConfig` merged over the app's config).
 */
export default class PresenceService extends Service {
  /** The resolved configuration (defaults applied). */
  readonly config: ResolvedPresenceConfig;

  /**
   * Who is signed in, as far as presence knows. The service reads the untracked `#userState`; templates
   * read the tracked copy through `isAnonymous`, which is written a microtask later. So
   * `setCurrentUser()` is safe anywhere — a component constructor or a getter while rendering, a route
   * hook, a session event — even when something in the same render already read `isAnonymous`.
   */
  @tracked private userState: UserState = 'assumed';
  #userState: UserState = 'assumed';
  #mirrorScheduled = false;

  #clock: PresenceClock;
  #injectedBus: PresenceBus | undefined;
  #bus: PresenceBus | undefined;
  #states = new Map<string, SharedChannel>();
  #fetcher: StateFetcher;
  #stateHost: SharedChannelHost;
  #updater: Updater;
  #activity: ActivityMonitor;
  #activityTimer: Timer;
  #someInactive = false;
  #lastDesired: ReadonlySet<string> = new Set();
  #csrfToken: string | null | undefined;
  #authToken: string | undefined;
  #userId: number | string | undefined;

  constructor(owner: Owner) {
    super(owner);
    // resolveRegistration is public on the application instance, though not on the narrow Owner type.
    const environment = (
      owner as Owner & { resolveRegistration(name: string): unknown }
    ).resolveRegistration('config:environment') as
      Record<string, unknown> | undefined;
    const overrides = owner.lookup('ember-presence:config') as
      PresenceConfig | undefined;
    this.config = resolveConfig({
      ...(environment?.['ember-presence'] ?? {}),
      ...(overrides ?? {}),
    });
    this.#clock =
      (owner.lookup('ember-presence:clock') as PresenceClock | undefined) ??
      systemClock;
    this.#injectedBus = owner.lookup('ember-presence:bus') as
      PresenceBus | undefined;
    this.#fetcher = new StateFetcher(this.config, (): Record<string, string> =>
      this.#authToken ? { Authorization: `Bearer ${this.#authToken}` } : {},
    );
    this.#stateHost = {
      clock: this.#clock,
      config: this.config,
      fetchState: (name) => this.#fetcher.fetch(name),
      bus: () => this.#getBus(),
      log: (line) => console.log(line),
      release: (state) => this.#release(state),
      fetched: (state, data) => this.#checkSelf(state, data),
    };
    this.#updater = new Updater({
      clock: this.#clock,
      config: this.config,
      clientId: () => this.clientId,
      desiredPresent: () => this.#computeDesired(),
      presenceRefused: (name, error) => this.#presenceRefused(name, error),
      csrfToken: () => this.#readCsrfToken(),
      authToken: () => this.#authToken,
    });
    this.#activityTimer = new Timer(this.#clock, () => this.#reconcile());
    this.#activity = new ActivityMonitor(this.#clock, {
      input: () => {
        // Input is frequent (pointermove): only recompute when it can bring someone back. The timer
        // that detects going inactive is armed by the recompute itself.
        if (this.#someInactive) this.#reconcile();
      },
      // Hiding moves the "inactive at" time earlier; showing may bring someone back.
      visibilityChange: () => this.#reconcile(),
      pageHide: () => {
        if (!this.#isAnonymous()) this.#updater.leaveAll('beacon');
      },
      pageShow: () => this.#updater.resume(),
    });
  }

  /**
   * A new handle on channel `name` (`/<prefix>/<rest>`). Handles of one name share server traffic and
   * data. Pass `{ owner: this }` from a component so the handle cleans up after it.
   */
  getChannel(name: string, options: GetChannelOptions = {}): PresenceChannel {
    if (typeof name !== 'string' || !name.startsWith('/') || name.length < 2) {
      throw new Error(
        `ember-presence: getChannel() needs a channel name like '/site/online', got ${JSON.stringify(name)}.`,
      );
    }
    if (this.isDestroying) {
      throw new Error(
        'ember-presence: getChannel() was called on a destroyed presence service.',
      );
    }
    const channel = new PresenceChannel(name, this.#channelHost);
    if (options.owner) {
      associateDestroyableChild(options.owner, channel);
      registerDestructor(channel, (doomed: PresenceChannel) =>
        this.#teardown(doomed),
      );
    }
    return channel;
  }

  /**
   * Tells the service who is signed in: a user, or `null` for an anonymous visitor (who may subscribe to
   * public channels but never enter). Signing out (or switching user) leaves every channel first.
   */
  setCurrentUser(user: PresenceCurrentUser | null): void {
    if (
      user !== null &&
      (typeof user !== 'object' ||
        (typeof user.id !== 'number' && typeof user.id !== 'string'))
    ) {
      throw new Error(
        `ember-presence: setCurrentUser() needs the signed-in user as an object with an id (e.g. { id: 42 }), or null for an anonymous visitor; got ${JSON.stringify(user)}.`,
      );
    }
    const nextId = user ? user.id : undefined;
    const changed = this.#userState !== 'assumed' && nextId !== this.#userId;
    if (changed || (this.#userState === 'assumed' && user === null))
      this.#leaveEverything();
    this.#userId = nextId;
    this.#userState = user ? 'signed-in' : 'anonymous';
    this.#scheduleMirror();
  }

  /** True after `setCurrentUser(null)`. Templates may read it: it is tracked. */
  get isAnonymous(): boolean {
    void this.userState; // consumed for the template's sake; the answer is never a microtask late
    return this.#isAnonymous();
  }

  /**
   * A token that tells the presence server who the user is (a JWT your backend signs, see the README's
   * "Your own app" section), sent as `Authorization: Bearer <token>` with every presence request and
   * message-bus poll; `null` to send none. Use it when the presence server is on another origin, where a
   * cookie of your app's origin does not reach it. Set it before `setCurrentUser(user)`; on sign-out,
   * call `setCurrentUser(null)` first (its leave still carries the token), then `setAuthToken(null)`.
   */
  setAuthToken(token: string | null): void {
    if (
      token !== null &&
      (typeof token !== 'string' || token.trim() === '' || /\s/.test(token))
    ) {
      throw new Error(
        `ember-presence: setAuthToken() needs the token string your backend signed (no spaces), or null; got ${typeof token === 'string' ? JSON.stringify(token) : typeof token}.`,
      );
    }
    this.#authToken = token ?? undefined;
    this.#bus?.setAuthToken?.(token);
  }

  /** Overrides the CSRF token read from the configured `<meta>` (`null` to send none). */
  setCsrfToken(token: string | null): void {
    this.#csrfToken = token;
  }

  /** The id this tab reports as `client_id`: the MessageBus client id. */
  get clientId(): string {
    return this.#getBus().clientId;
  }

  override willDestroy(): void {
    super.willDestroy();
    this.#activity.stop();
    this.#activityTimer.cancel();
    this.#updater.destroy();
    this.#fetcher.destroy();
    for (const state of this.#states.values()) state.destroy();
    this.#states.clear();
    this.#bus?.destroy?.();
    this.#bus = undefined;
  }

  // --- internals ---------------------------------------------------------------------------------

  /** Copies `#userState` to the tracked field after the current render (see `userState`). */
  #scheduleMirror(): void {
    if (this.#mirrorScheduled) return;
    this.#mirrorScheduled = true;
    queueMicrotask(() => {
      this.#mirrorScheduled = false;
      if (this.isDestroyed || this.userState === this.#userState) return;
      this.userState = this.#userState;
    });
  }

  #isAnonymous(): boolean {
    return this.#userState === 'anonymous';
  }

  #getBus(): PresenceBus {
    if (this.#bus) return this.#bus;
    const bus =
      this.#injectedBus ??
      createMessageBusAdapter({
        baseUrl: this.config.baseUrl,
        start: this.config.startBus,
        chunked: this.config.chunkedPolls,
        credentials: this.config.credentials,
      });
    if (this.#authToken !== undefined) bus.setAuthToken?.(this.#authToken);
    this.#bus = bus;
    return bus;
  }

  #stateFor(name: string): SharedChannel {
    let state = this.#states.get(name);
    if (!state) {
      state = new SharedChannel(name, this.#stateHost);
      this.#states.set(name, state);
    }
    return state;
  }

  /** Which channels should be present on the server now; also notes when activity can next change it. */
  #computeDesired(): Set<string> {
    const desired = new Set<string>();
    this.#someInactive = false;
    if (this.#isAnonymous() || this.isDestroying) return desired;
    const now = this.#clock.now();
    let nextCheck = Infinity;
    for (const state of this.#states.values()) {
      for (const rule of state.presenceRules()) {
        if (rule === null || this.#activity.isActive(rule, now))
          desired.add(state.name);
        else this.#someInactive = true;
        if (rule)
          nextCheck = Math.min(
            nextCheck,
            this.#activity.inactiveAt(rule, now) ?? Infinity,
          );
      }
    }
    if (nextCheck === Infinity) this.#activityTimer.cancel();
    else this.#activityTimer.at(nextCheck);
    return desired;
  }

  /** Recomputes the desired state and tells the updater when it differs from the last one. */
  #reconcile(): void {
    if (this.isDestroying) return;
    const desired = this.#computeDesired();
    const same =
      desired.size === this.#lastDesired.size &&
      [...desired].every((n) => this.#lastDesired.has(n));
    this.#lastDesired = desired;
    if (!same) this.#updater.changed();
  }

  #leaveEverything(): void {
    this.#updater.leaveAll('fetch');
    for (const state of [...this.#states.values()]) state.forgetPresence();
    this.#updater.reset(
      new Error(
        'ember-presence: the current user changed before the server answered.',
      ),
    );
    this.#reconcile();
  }

  /** The server refused presence in `name`: no handle of it stays present, and each says why. */
  #presenceRefused(name: string, error: Error): void {
    const state = this.#states.get(name);
    if (!state) return;
    state.refusePresence(error);
    this.#reconcile();
  }

  /**
   * A fetched state that lacks the signed-in user while the server confirmed them present means the
   * server lost its state (restarted on the memory store, Redis restarted empty): enter again now rather
   * than at the next heartbeat, so the others see them within a second of the server's return. A channel
   * that lists fewer users than it counts (`maxUsersShown`) may simply not list them: no conclusion.
   */
  #checkSelf(state: SharedChannel, data: ChannelData): void {
    const userId = this.#userId;
    if (
      this.#userState !== 'signed-in' ||
      userId === undefined ||
      data.users === null ||
      data.count > data.users.length ||
      !this.#lastDesired.has(state.name)
    )
      return;
    if (data.users.some((user) => String(user.id) === String(userId))) return;
    this.#updater.reassert(state.name);
  }

  #release(state: SharedChannel): void {
    if (this.#states.get(state.name) === state && state.isUnused)
      this.#states.delete(state.name);
  }

  #teardown(channel: PresenceChannel): void {
    if (this.isDestroying) return;
    if (channel.present && !this.#isAnonymous()) {
      // Nobody awaits this promise any more; a failure has nowhere to go.
      channel.leave().catch(() => undefined);
    }
    channel.unsubscribe();
  }

  #readCsrfToken(): string | undefined {
    if (this.#csrfToken !== undefined) return this.#csrfToken ?? undefined;
    const metaName = this.config.csrf.metaName;
    if (!metaName || typeof document === 'undefined') return undefined;
    const meta = document.querySelector(`meta[name="${CSS.escape(metaName)}"]`);
    return meta?.getAttribute('content') ?? undefined;
  }

  #channelHost: ChannelHost = {
    assertCanEnter: (name, action) => {
      if (this.#isAnonymous()) {
        throw new Error(
          `ember-presence: anonymous visitors cannot ${action} '${name}'. Sign the user in and call presence.setCurrentUser(user) first, or only subscribe().`,
        );
      }
      if (this.isDestroying)
        throw new Error(
          `ember-presence: cannot ${action} '${name}': the presence service was destroyed.`,
        );
    },
    enter: (handle, rule: ActiveOptions | null) => {
      this.#stateFor(handle.name).addPresent(handle, rule);
      this.#activity.start();
      const promise = this.#updater.enter(handle.name);
      this.#reconcile();
      return promise;
    },
    leave: (handle) => {
      this.#states.get(handle.name)?.removePresent(handle);
      const promise = this.#updater.leave(handle.name);
      this.#reconcile();
      return promise;
    },
    subscribe: async (handle, initialData) => {
      const state = this.#stateFor(handle.name);
      await state.subscribe(handle, initialData);
      return state;
    },
    unsubscribe: (handle) => {
      this.#states.get(handle.name)?.unsubscribe(handle);
    },
  };
}

type UserState = 'assumed' | 'signed-in' | 'anonymous';

declare module '@ember/service' {
  interface Registry {
    presence: PresenceService;
  }
}
