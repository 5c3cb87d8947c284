/**
 * The demo's channels, shipped with the package: `ember-presence-server --demo --config
 * node_modules/ember-presence/server/config/demo.js`. A config module default-exports a function that
 * receives the presence server and registers prefixes; each callback gets the full channel name and
 * returns a config (the channel exists) or null (it does not).
 *
 * Users (see the demo login): 1 ann, 2 bob, 3 cyd — group 1 "members"; 4 dee — no group.
 */

/** Team id → the user ids that may see and enter `/team/<id>`. */
export const TEAMS = {
  1: [1, 2],
  2: [3, 4],
};

/**
 * "Online now" lists this many users (`maxUsersShown`): few, so that the demo's four users show what a
 * busy site sees, the first ones listed and a count of the others.
 */
const ONLINE_SHOWN = 3;

/** Group 1: the demo's members (ann, bob, cyd). */
const MEMBERS_GROUP_ID = 1;

/**
 * Channel timeout in seconds. The e2e suite shortens it (PRESENCE_DEMO_TIMEOUT) to watch a client whose
 * network was cut disappear without waiting a minute.
 */
const TIMEOUT =
  positiveNumber(globalThis.process?.env?.PRESENCE_DEMO_TIMEOUT) ?? 60;

/** @param {{ registerPrefix(prefix: string, callback: (name: string) => object | null): void }} presence */
export default function demoConfig(presence) {
  // "Online now": anyone may look, logged-in users appear. The first ONLINE_SHOWN to arrive are listed,
  // the rest only counted ("+1"): how a site with thousands online keeps the state small.
  presence.registerPrefix('site', (name) =>
    name === '/site/online'
      ? { public: true, timeout: TIMEOUT, maxUsersShown: ONLINE_SHOWN }
      : null,
  );

  // "<name> is replying…": members only, for topics with a numeric id.
  presence.registerPrefix('topic', (name) =>
    /^\/topic\/[1-9]\d{0,9}\/reply$/.test(name)
      ? { allowedGroupIds: [MEMBERS_GROUP_ID], timeout: TIMEOUT }
      : null,
  );

  // A visitor counter: a number for everyone, never names.
  presence.registerPrefix('stats', (name) =>
    name === '/stats/visitors'
      ? { public: true, countOnly: true, timeout: TIMEOUT }
      : null,
  );

  // A private team room: only its members know it exists.
  presence.registerPrefix('team', (name) => {
    const match = /^\/team\/([1-9]\d{0,9})$/.exec(name);
    const members = match ? TEAMS[Number(match[1])] : undefined;
    return members ? { allowedUserIds: members, timeout: TIMEOUT } : null;
  });
}

function positiveNumber(value) {
  const n = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(n) && n > 0
    ? n
    : undefined;
}
