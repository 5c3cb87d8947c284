/**
 * Compile-time pins of the public API: `ember-tsc` (part of `npm test`) fails when one of these
 * signatures changes. A change here is a change for every app using the addon: say so in the changelog.
 */
import type {
  EnterOptions,
  PresenceChannel,
  PresenceChannelFull,
  PresenceChannelNotFound,
  PresenceClock,
  PresenceConfig,
  PresenceRequestError,
  PresenceService,
  PresenceUser,
} from 'ember-presence';
import type {
  advanceClock,
  dropNextMessage,
  fakePresenceServer,
  FakePresenceServer,
  FakeUser,
  joinChannel,
  leaveChannel,
  OtherClientOptions,
  PresenceHooks,
  presentUsers,
  registerChannel,
  registerPrefix,
  setPresenceUser,
  setUserActive,
  failNextRequest,
  holdNextRequest,
  deliverMessage,
  FakeEndpoint,
  FakeFailure,
  setupPresence,
  SetupPresenceOptions,
  FakeRequest,
  FakeClock,
  unregisterChannel,
  defaultClientId,
  ChannelConfigInput,
  PresenceUser as TestPresenceUser,
} from 'ember-presence/test-support';
import type Owner from '@ember/owner';
import type Service from '@ember/service';

type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2
    ? true
    : false;
function pin<T extends true>(): T | undefined {
  return undefined;
}

// The service, as apps get it from the container (the Registry entry) and use it.
declare const owner: Owner;
export const presence = owner.lookup('service:presence');
pin<Equals<typeof presence, PresenceService>>();
pin<
  Equals<
    PresenceService['getChannel'],
    (name: string, options?: { owner?: object }) => PresenceChannel
  >
>();
pin<
  Equals<
    Parameters<PresenceService['setCurrentUser']>,
    [user: { id: number | string } | null]
  >
>();

// PresenceChannel: tracked fields templates read directly.
pin<Equals<PresenceChannel['name'], string>>();
pin<Equals<PresenceChannel['present'], boolean>>();
pin<Equals<PresenceChannel['subscribed'], boolean>>();
pin<
  Equals<PresenceChannel['users'], readonly PresenceUser[] | null | undefined>
>();
pin<Equals<PresenceChannel['count'], number | undefined>>();
pin<Equals<PresenceChannel['countOnly'], boolean | undefined>>();
pin<Equals<PresenceChannel['error'], Error | undefined>>();
pin<
  Equals<PresenceChannel['enter'], (options?: EnterOptions) => Promise<void>>
>();
pin<Equals<PresenceChannel['leave'], () => Promise<void>>>();
pin<
  Equals<PresenceChannel['subscribe'], (initialData?: unknown) => Promise<void>>
>();
pin<Equals<PresenceChannel['unsubscribe'], () => void>>();
// Internals stay off the public types: no `_`-prefixed members on a handle, and none that the service
// adds to Ember's `Service` (which brings `_super`).
pin<Equals<Extract<keyof PresenceChannel, `_${string}`>, never>>();
pin<
  Equals<
    Exclude<Extract<keyof PresenceService, `_${string}`>, keyof Service>,
    never
  >
>();
pin<
  Equals<
    PresenceUser,
    {
      readonly id: number;
      readonly username: string;
      readonly name: string | null;
      readonly avatar_template: string;
    }
  >
>();
pin<Equals<PresenceChannelNotFound['channelName'], string>>();
pin<Equals<PresenceChannelFull['channelName'], string>>();
pin<Equals<PresenceChannelFull['name'], string>>();
pin<Equals<ChannelConfigInput['maxUsers'], number | null | undefined>>();
pin<Equals<PresenceConfig['heartbeatMs'], number | undefined>>();
pin<Equals<PresenceConfig['baseUrl'], string | undefined>>();

// Test support.
pin<
  Equals<
    typeof setupPresence,
    (hooks: PresenceHooks, options?: SetupPresenceOptions) => void
  >
>();
pin<
  Equals<
    typeof joinChannel,
    (
      name: string,
      user: FakeUser,
      options?: OtherClientOptions,
    ) => Promise<void>
  >
>();
pin<
  Equals<
    typeof leaveChannel,
    (
      name: string,
      user: Pick<FakeUser, 'id'>,
      options?: OtherClientOptions,
    ) => Promise<void>
  >
>();
pin<
  Equals<
    typeof registerChannel,
    (name: string, config?: ChannelConfigInput) => Promise<void>
  >
>();
pin<Equals<Parameters<typeof registerPrefix>[0], string>>();
pin<
  Equals<typeof presentUsers, (name: string) => Promise<TestPresenceUser[]>>
>();
pin<Equals<typeof advanceClock, (ms: number) => Promise<void>>>();
pin<Equals<typeof dropNextMessage, (name: string) => void>>();
pin<Equals<typeof setPresenceUser, (user: FakeUser | null) => Promise<void>>>();
pin<Equals<typeof fakePresenceServer, () => FakePresenceServer>>();
pin<
  Equals<
    typeof setUserActive,
    (active: boolean, options?: { awayForMs?: number }) => Promise<void>
  >
>();
pin<Equals<FakeEndpoint, '/presence/get' | '/presence/update'>>();
pin<
  Equals<
    typeof failNextRequest,
    (endpoint: FakeEndpoint, failure: FakeFailure) => void
  >
>();
pin<Equals<FakeFailure['status'], number>>();
pin<Equals<typeof holdNextRequest, (endpoint: FakeEndpoint) => () => void>>();
pin<
  Equals<
    typeof deliverMessage,
    (
      name: string,
      data: unknown,
      options?: { messageId?: number },
    ) => Promise<void>
  >
>();
pin<Equals<PresenceService['setAuthToken'], (token: string | null) => void>>();
pin<Equals<PresenceRequestError['reason'], string | undefined>>();
pin<Equals<PresenceRequestError['url'], string | undefined>>();
pin<
  Equals<
    FakeUser,
    {
      id: number;
      username: string;
      name?: string | null;
      avatar_template?: string;
      groupIds?: readonly number[];
    }
  >
>();
pin<Equals<PresenceConfig['chunkedPolls'], boolean | undefined>>();
pin<Equals<PresenceClock['manual'], boolean | undefined>>();
pin<
  Equals<
    SetupPresenceOptions,
    {
      currentUser?: FakeUser | null;
      channels?: Record<string, ChannelConfigInput>;
      baseUrl?: string;
      rateLimit?: { limit: number; windowMs: number } | false;
      debounceMs?: number;
      throttleMs?: number;
    }
  >
>();
pin<Equals<typeof unregisterChannel, (name: string) => Promise<void>>>();
pin<Equals<typeof defaultClientId, (userId: number) => string>>();
pin<Equals<FakePresenceServer['requests'], FakeRequest[]>>();
pin<
  Equals<
    FakeRequest,
    {
      method: string;
      url: string;
      status: number;
      query: Record<string, string | string[]>;
      body: unknown;
      response: unknown;
    }
  >
>();
pin<Equals<ConstructorParameters<typeof FakeClock>, [start?: number]>>();
pin<Equals<FakeClock['advance'], (ms: number) => Promise<void>>>();
pin<Equals<FakeClock['tick'], (ms: number) => void>>();
pin<Equals<FakeClock['manual'], true>>();
pin<Equals<FakePresenceServer['heldPolls'], number>>();
