/**
 * Test support for apps using ember-presence: a fake presence server with the real server's semantics,
 * and helpers to act as other users. See the README's Testing section.
 */
export {
  setupPresence,
  type SetupPresenceOptions,
  type PresenceHooks,
} from './setup-presence';
export {
  joinChannel,
  defaultClientId,
  type OtherClientOptions,
} from './join-channel';
export { leaveChannel } from './leave-channel';
export { registerChannel, unregisterChannel } from './register-channel';
export { registerPrefix } from './register-prefix';
export { presentUsers } from './present-users';
export { advanceClock } from './advance-clock';
export { dropNextMessage } from './drop-next-message';
export { setPresenceUser } from './set-presence-user';
export { setUserActive } from './set-user-active';
export { failNextRequest } from './fail-next-request';
export { holdNextRequest } from './hold-next-request';
export { deliverMessage } from './deliver-message';
export { fakePresenceServer } from './fake-presence-server';
export {
  type FakeUser,
  type FakeRequest,
  type FakePresenceServer,
  type FakeEndpoint,
  type FakeFailure,
} from './-private/fake-server';
export { FakeClock } from './-private/fake-clock';
export type {
  ChannelConfigInput,
  PresenceUser,
} from 'ember-presence/test-support/-private/core';
