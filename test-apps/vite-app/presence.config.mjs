// presence.config.mjs: which channels exist, who may see them and who may be in them.
// Run the server with it: npx ember-presence-server --config presence.config.mjs
export default function configurePresence(presence) {
  // Everyone may see who is online; every signed-in user may be in it.
  presence.registerPrefix('site', (name) =>
    name === '/site/online' ? { public: true } : null,
  );
  // "Who is replying to topic 42": only topics that exist, only for the groups that may read them. The
  // callback may be async: look the topic up in your database.
  presence.registerPrefix('topic', async (name) => {
    const topic = await findTopic(Number(name.split('/')[2]));
    return topic ? { allowedGroupIds: topic.groupIds } : null;
  });
  // Identities never leave the server: state and messages carry counts only.
  presence.registerPrefix('stats', () => ({ public: true, countOnly: true }));
}

// Stands in for your database.
async function findTopic(id) {
  return Number.isSafeInteger(id) && id > 0 ? { groupIds: [1] } : null;
}
