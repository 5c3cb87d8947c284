/**
 * `document.visibilityState` as a test sets it (`setUserActive`), restored by `setupPresence` after each
 * test. Changing it dispatches `visibilitychange`, as a browser does.
 */
let original: PropertyDescriptor | undefined;
let overridden = false;

export function setPageVisibility(state: DocumentVisibilityState): void {
  if (!overridden) {
    original = Object.getOwnPropertyDescriptor(document, 'visibilityState');
    overridden = true;
  }
  Object.defineProperty(document, 'visibilityState', {
    configurable: true,
    get: () => state,
  });
  document.dispatchEvent(new Event('visibilitychange'));
}

export function restorePageVisibility(): void {
  if (!overridden) return;
  if (original) Object.defineProperty(document, 'visibilityState', original);
  else delete (document as { visibilityState?: unknown }).visibilityState;
  overridden = false;
  original = undefined;
}
