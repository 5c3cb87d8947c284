import Route from '@ember/routing/route';

/**
 * `team/:team_id`. Whether the team exists is the presence server's secret: the page asks for the team's
 * channel and shows "not found" when it gets nothing, whether the team is missing or private to others.
 */
export default class TeamRoute extends Route {
  model(params: { team_id: string }): { teamId: string } {
    return { teamId: params.team_id };
  }
}
