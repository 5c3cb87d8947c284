/**
 * ember-presence: real-time presence for Ember apps.
 *
 * The `presence` service hands out `PresenceChannel` handles; see `services/presence` for usage. This
 * module exports the public types and errors only.
 */
export type {
  default as PresenceService,
  GetChannelOptions,
  PresenceCurrentUser,
} from './services/presence';
export { PresenceChannel } from './-private/presence-channel';
export type { EnterOptions } from './-private/presence-channel';
export type { ActiveOptions } from './-private/activity';
export {
  PresenceChannelFull,
  PresenceChannelNotFound,
  PresenceRequestError,
} from './-private/errors';
export type { PresenceConfig, PresenceCsrfConfig } from './-private/config';
export type { PresenceUser } from './-private/types';
export type { PresenceBus } from './-private/bus';
export type { PresenceClock, TimerHandle } from './-private/clock';
