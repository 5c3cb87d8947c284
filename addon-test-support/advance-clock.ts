import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';

/**
 * Moves the shared fake clock forward: the app's heartbeats, debounces and retries fire, and the server
 * expires clients whose timeout passed (its sweep runs every 5 s of fake time), all in order. No real time
 * passes.
 *
 * @example await advanceClock(65_000); // a tab that stopped heart-beating is gone from a 60 s channel
 */
export async function advanceClock(ms: number): Promise<void> {
  await presenceTestState('advanceClock').clock.advance(ms);
  await settled();
}
