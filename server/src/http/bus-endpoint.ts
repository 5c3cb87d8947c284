import type { Request } from 'express';
import {
  MessageBus,
  type MessageBusOptions,
} from '../core/message-bus/message-bus.js';
import type { Logger } from '../core/logger.js';
import type { PollAnswerObserver } from '../core/metrics-types.js';
import type { PresenceStore } from '../core/store.js';
import type { Clock, CurrentUser } from '../core/types.js';
import {
  messageBusRouter,
  type MessageBusRouter,
} from '../message-bus/router.js';

/** Options of {@link createBusEndpoint}. */
export interface BusEndpointOptions {
  store: PresenceStore;
  clock: Clock;
  logger: Logger;
  /** The same identity hook as the presence endpoints. */
  currentUser: (req: Request) => Promise<CurrentUser | null>;
  /** May the requester follow bus channel `channel` at all? (Presence channels: only those who may view them.) */
  canFollow: NonNullable<MessageBusOptions['canFollow']>;
  /** How long a poll is held when nothing is ready; absent → the router's default. */
  longPollMs?: number | undefined;
  /** Long polls held at once; beyond it polls are answered at once. Absent → the router's default. */
  maxHeldPolls?: number | undefined;
  maxHeldPollsPerPeer?: number | undefined;
  /** Channels followed at once by one peer's held polls. Absent → the router's default. */
  maxFollowedChannelsPerPeer?: number | undefined;
  /** Origins granted CORS for cross-origin polls. Absent → none. */
  allowedOrigins?: readonly string[] | undefined;
  /** Told how each poll was answered (metrics). Absent → nothing is observed. */
  onPollAnswer?: PollAnswerObserver | undefined;
}

/**
 * The message bus as mounted by `createPresenceServer`: its router (and its `stats()`), and shutdown. Host
 * code publishes through `PresenceCore.publish`, which applies the same rule on the same store.
 */
export interface BusEndpoint {
  router: MessageBusRouter;
  /** Answers held polls, then stops the bus's subscriptions (the store stays open). */
  close(): Promise<void>;
}

/** Wires the MessageBus (docs/protocol.md §6) to the presence server's store, identity hook and access rules. */
export function createBusEndpoint(options: BusEndpointOptions): BusEndpoint {
  const bus = new MessageBus({
    store: options.store,
    clock: options.clock,
    logger: options.logger,
    canFollow: options.canFollow,
  });
  const router = messageBusRouter({
    bus,
    currentUser: options.currentUser,
    logger: options.logger,
    // Absent (undefined) options take the router's defaults.
    longPollMs: options.longPollMs,
    maxHeldPolls: options.maxHeldPolls,
    maxHeldPollsPerPeer: options.maxHeldPollsPerPeer,
    maxFollowedChannelsPerPeer: options.maxFollowedChannelsPerPeer,
    allowedOrigins: options.allowedOrigins,
    onAnswer: options.onPollAnswer,
  });
  return {
    router,
    close: async () => {
      await router.close();
      await bus.close();
    },
  };
}
