import Route from '@ember/routing/route';
import { service } from '@ember/service';
import type SessionService from 'dummy/services/session';

/** Learns who is signed in before anything renders, so presence starts as the right user. */
export default class ApplicationRoute extends Route {
  @service declare session: SessionService;

  async beforeModel(): Promise<void> {
    try {
      await this.session.load();
    } catch (error) {
      // No demo login on this server: the demo still shows public presence to an anonymous visitor.
      console.warn('demo login unavailable:', error);
      this.session.assumeUser(null);
    }
  }
}
