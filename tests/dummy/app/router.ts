import EmberRouter from '@ember/routing/router';
import config from 'dummy/config/environment';

export default class Router extends EmberRouter {
  location = config.locationType;
  rootURL = config.rootURL;
}

Router.map(function () {
  this.route('topic', { path: '/topic/:topic_id' });
  this.route('team', { path: '/team/:team_id' });
  this.route('not-found', { path: '/*path' });
});
