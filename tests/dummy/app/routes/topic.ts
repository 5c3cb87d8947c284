import Route from '@ember/routing/route';
import { findTopic, type Topic } from 'dummy/data/topics';

/** `topic/:topic_id`: a known topic, or `{ topic: undefined }` for the "not found" page. */
export default class TopicRoute extends Route {
  model(params: { topic_id: string }): { topic: Topic | undefined } {
    return { topic: findTopic(Number(params.topic_id)) };
  }
}
