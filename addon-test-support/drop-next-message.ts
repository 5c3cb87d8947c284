import { presenceTestState } from './-private/context';

/**
 * The next change message of `name` is published but never reaches the app, as if the network lost it.
 * The app's channel notices the gap at the following message and resynchronises by itself.
 *
 * @example
 * dropNextMessage('/site/online');
 * await joinChannel('/site/online', ann);   // lost
 * await joinChannel('/site/online', bob);   // gap detected → refetch → both shown
 */
export function dropNextMessage(name: string): void {
  presenceTestState('dropNextMessage').server.dropNextMessage(name);
}
