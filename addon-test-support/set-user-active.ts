import { settled } from '@ember/test-helpers';
import { presenceTestState } from './-private/context';
import { setPageVisibility } from './-private/visibility';

/**
 * The person at the keyboard goes away (`false`: the tab is hidden, and `awayForMs` of fake time pass,
 * default 60 s, past both away rules of `enter()`: hidden ≥ 10 s, no input ≥ 60 s) or comes back (`true`:
 * the tab is visible and receives input). Channels entered with `onlyWhileActive` (the default) leave and
 * re-enter on the server accordingly.
 *
 * @example
 * await setUserActive(false);
 * assert.deepEqual(await presentUsers('/topic/1/reply'), []);
 * await setUserActive(true);
 */
export async function setUserActive(
  active: boolean,
  options: { awayForMs?: number } = {},
): Promise<void> {
  const { clock } = presenceTestState('setUserActive');
  if (active) {
    setPageVisibility('visible');
    window.dispatchEvent(new Event('keydown'));
    await settled();
    return;
  }
  setPageVisibility('hidden');
  await clock.advance(options.awayForMs ?? 60_000);
  await settled();
}
