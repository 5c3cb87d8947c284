export { default } from 'ember-presence/services/presence';
