import { fileURLToPath } from 'node:url';

/** The repository root (e2e/ lives directly under it). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
