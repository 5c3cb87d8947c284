import Service, { service } from '@ember/service';
import { tracked } from '@glimmer/tracking';
import { waitForPromise } from '@ember/test-waiters';
import type { PresenceUser } from 'ember-presence';
import type PresenceService from 'ember-presence/services/presence';

/**
 * A person of the demo: what the demo login answers (a `PresenceUser`), or less when a test signs someone
 * in directly.
 */
export interface DemoUser {
  id: number;
  username: string;
  name?: string | null;
  avatar_template?: string;
}

/** What `GET /presence/demo-users` answers (the server's demo login, see server/src/http/auth/). */
interface DemoUsersResponse {
  users: PresenceUser[];
  current_user: PresenceUser | null;
}

/**
 * The demo's sign-in, on the presence server's demo login: pick a user, get a signed cookie. It tells the
 * presence service who is signed in after every change, which is the one thing an app must do for
 * presence (`presence.setCurrentUser(user | null)`).
 */
export default class SessionService extends Service {
  @service declare presence: PresenceService;

  /** The signed-in user; `null` for an anonymous visitor. */
  @tracked user: DemoUser | null = null;
  /** The users one may sign in as. */
  @tracked users: readonly DemoUser[] = [];

  #loaded: Promise<void> | undefined;

  /** Asks the server who is signed in (once per page load). */
  load(): Promise<void> {
    this.#loaded ??= this.#fetchUsers();
    return this.#loaded;
  }

  /**
   * Signs in without asking the server: for tests (with the fake presence server of
   * `ember-presence/test-support`) and pages that embed the user.
   */
  assumeUser(
    user: DemoUser | null,
    users: readonly DemoUser[] = user ? [user] : [],
  ): void {
    this.#loaded = Promise.resolve();
    this.users = users;
    this.#setUser(user);
  }

  /** Signs in as `username` (sets the demo cookie). */
  async login(username: string): Promise<void> {
    const body = await this.#request<{ current_user: PresenceUser }>(
      'presence/demo-login',
      { method: 'POST', body: JSON.stringify({ username }) },
    );
    this.#setUser(body.current_user);
  }

  /** Signs out: presence first leaves every channel, then the cookie goes. */
  async logout(): Promise<void> {
    this.#setUser(null);
    await this.#request('presence/demo-logout', { method: 'POST', body: '{}' });
  }

  async #fetchUsers(): Promise<void> {
    const body = await this.#request<DemoUsersResponse>('presence/demo-users');
    this.users = body.users;
    this.#setUser(body.current_user);
  }

  #setUser(user: DemoUser | null): void {
    this.presence.setCurrentUser(user);
    this.user = user;
  }

  /** A JSON request to the presence server (the demo login lives next to the presence endpoints). */
  #request<T>(path: string, init: RequestInit = {}): Promise<T> {
    // Test waiters: settled() covers a sign-in in flight.
    return waitForPromise(
      requestJson<T>(
        `${this.presence.config.baseUrl}${path}`,
        this.presence.config.credentials,
        init,
      ),
    );
  }
}

async function requestJson<T>(
  url: string,
  credentials: RequestCredentials,
  init: RequestInit,
): Promise<T> {
  const response = await fetch(url, {
    credentials,
    ...init,
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
  });
  const body = (await response.json().catch(() => null)) as
    (T & { errors?: string[] }) | null;
  if (!response.ok || body === null) {
    throw new Error(
      body?.errors?.join(' ') ??
        `${init.method ?? 'GET'} ${url} failed: HTTP ${response.status}`,
    );
  }
  return body;
}

declare module '@ember/service' {
  interface Registry {
    session: SessionService;
  }
}
