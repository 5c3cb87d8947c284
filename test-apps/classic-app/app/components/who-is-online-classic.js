import Component from '@ember/component';
import { service } from '@ember/service';

/**
 * The same list in the original, Discourse-style classic component form (`@ember/component`, `.extend`,
 * a colocated `.hbs`, lifecycle hooks), which ember-presence keeps working for older code bases.
 */
export default Component.extend({
  presence: service(),

  init() {
    this._super(...arguments);
    this.set('channel', this.presence.getChannel('/site/online'));
  },

  didInsertElement() {
    this._super(...arguments);
    this.channel.subscribe();
  },

  willDestroyElement() {
    this.channel.unsubscribe();
    this._super(...arguments);
  },
});
