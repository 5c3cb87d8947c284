import type { Server } from 'node:http';

/** One event of a webhook POST. */
export interface PresenceWebhookEvent {
  id: string;
  name:
    'member_added' | 'member_removed' | 'channel_occupied' | 'channel_vacated';
  channel: string;
  user_id: number;
  at: number;
}

export function isSigned(
  secret: string,
  rawBody: Buffer | string,
  header: string | string[] | undefined,
): boolean;

export function createReceiver(options: {
  secret: string;
  onEvent: (event: PresenceWebhookEvent) => void | Promise<void>;
  maxSkewMs?: number;
}): Server;
