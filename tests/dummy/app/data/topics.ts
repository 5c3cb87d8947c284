/** A forum topic of the demo. The demo has no database: topics are fixed, replies live in the page. */
export interface Topic {
  id: number;
  title: string;
  body: string;
}

/** The demo's topics; `/topic/<id>/reply` exists for any numeric id, these are the ones with a page. */
export const TOPICS: readonly Topic[] = Object.freeze([
  {
    id: 1,
    title: 'Welcome to the presence demo',
    body: 'Open this topic in a second window as another user and start typing a reply: the other window shows who is replying.',
  },
  {
    id: 2,
    title: 'Which Redis for production?',
    body: 'The reference server runs on its embedded memory store for one process, and on Redis for many.',
  },
  {
    id: 3,
    title: 'Show us your presence indicators',
    body: 'Avatars, initials, counts: how does your app tell people who else is here?',
  },
]);

/** The topic with this id, or `undefined`. */
export function findTopic(id: number): Topic | undefined {
  return TOPICS.find((topic) => topic.id === id);
}

/** The private team rooms the demo links to; only their members learn that they exist. */
export const TEAM_IDS: readonly number[] = Object.freeze([1, 2]);
