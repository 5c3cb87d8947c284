import type { PublishRules } from './store.js';
import type {
  Audience,
  ChannelConfig,
  CurrentUser,
  PresenceUser,
} from './types.js';

/**
 * The access rules of docs/protocol.md §1 and the publishing audience of §5, as pure functions over a normalised
 * {@link ChannelConfig}. `null`/`undefined` stands for an anonymous visitor.
 */

/** The requester: a logged-in user or `null` for an anonymous visitor. */
export type Requester = Pick<CurrentUser, 'id' | 'groupIds'> | null | undefined;

function isListed(
  config: ChannelConfig,
  user: NonNullable<Requester>,
): boolean {
  if (config.allowedUserIds?.includes(user.id)) return true;
  const allowedGroups = config.allowedGroupIds;
  if (!allowedGroups || allowedGroups.length === 0) return false;
  // `groupIds` comes from host code; tolerate a missing list rather than crash on it.
  const groups: unknown = user.groupIds;
  if (!Array.isArray(groups)) return false;
  return (groups as readonly number[]).some((group) =>
    allowedGroups.includes(group),
  );
}

/**
 * May `user` see who is in the channel? Public channels: everyone, anonymous visitors included.
 * Otherwise only users in `allowedUserIds` or members of a group in `allowedGroupIds`.
 */
export function canView(config: ChannelConfig, user: Requester): boolean {
  if (config.public) return true;
  if (!user) return false;
  return isListed(config, user);
}

/** May `user` mark themselves present? Never for anonymous visitors; otherwise the same as {@link canView}. */
export function canEnter(config: ChannelConfig, user: Requester): boolean {
  if (!user) return false;
  return canView(config, user);
}

/**
 * Who receives the channel's change messages: `{}` (everyone) for public channels, the user/group lists
 * otherwise (empty lists are absent), or `null` when nobody may view it — then state still changes but
 * nothing is published.
 */
export function audienceFor(config: ChannelConfig): Audience | null {
  if (config.public) return {};
  const userIds =
    config.allowedUserIds && config.allowedUserIds.length > 0
      ? [...config.allowedUserIds]
      : null;
  const groupIds =
    config.allowedGroupIds && config.allowedGroupIds.length > 0
      ? [...config.allowedGroupIds]
      : null;
  if (!userIds && !groupIds) return null;
  const audience: Audience = {};
  if (userIds) audience.userIds = userIds;
  if (groupIds) audience.groupIds = groupIds;
  return audience;
}

/** The {@link PublishRules} the store needs for every state-changing call on a channel with `config`. */
export function publishRulesFor(config: ChannelConfig): PublishRules {
  const rules: PublishRules = {
    countOnly: config.countOnly,
    audience: audienceFor(config),
  };
  if (config.maxUsersShown !== undefined && !config.countOnly)
    rules.maxUsersShown = config.maxUsersShown;
  return rules;
}

/**
 * A user reduced to exactly the four public fields (`id`, `username`, `name`, `avatar_template`), so that
 * host-only fields such as `groupIds` or an email never reach state or messages. Throws a `TypeError`
 * naming the fix when host code hands over something that is not a usable user.
 */
export function toPresenceUser(user: PresenceUser): PresenceUser {
  if (typeof user !== 'object' || user === null) {
    throw new TypeError(
      'ember-presence: expected a user object with id, username, name, avatar_template',
    );
  }
  const { id, username, name, avatar_template } = user as Partial<
    Record<keyof PresenceUser, unknown>
  >;
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
    throw new TypeError(
      'ember-presence: user.id must be an integer (check your currentUser hook)',
    );
  }
  if (typeof username !== 'string') {
    throw new TypeError(
      'ember-presence: user.username must be a string (check your currentUser hook)',
    );
  }
  if (name !== null && name !== undefined && typeof name !== 'string') {
    throw new TypeError(
      'ember-presence: user.name must be a string or null (check your currentUser hook)',
    );
  }
  if (
    avatar_template !== undefined &&
    avatar_template !== null &&
    typeof avatar_template !== 'string'
  ) {
    throw new TypeError(
      'ember-presence: user.avatar_template must be a string (check your currentUser hook)',
    );
  }
  return {
    id,
    username,
    name: typeof name === 'string' ? name : null,
    avatar_template: typeof avatar_template === 'string' ? avatar_template : '',
  };
}

/** Whether two users (as {@link toPresenceUser} reduces them) have the same public fields. */
export function samePresenceUser(a: PresenceUser, b: PresenceUser): boolean {
  return (
    a.id === b.id &&
    a.username === b.username &&
    a.name === b.name &&
    a.avatar_template === b.avatar_template
  );
}
