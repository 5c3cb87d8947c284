import type { PresenceBus } from 'ember-presence';

interface Subscription {
  onMessage: (data: unknown, messageId: number) => void;
  lastId: number;
}

/** An in-memory `PresenceBus`: tests publish messages to it directly. */
export class FakeBus implements PresenceBus {
  readonly clientId = 'test-client-id';
  readonly subscriptions = new Map<string, Subscription[]>();
  /** Every `subscribe` call, in order, with the id it asked to start after. */
  readonly subscribeCalls: { channel: string; lastId: number }[] = [];
  destroyed = false;
  /** The last token given to `setAuthToken` (`null`: cleared; `undefined`: never set). */
  authToken: string | null | undefined;

  setAuthToken(token: string | null): void {
    this.authToken = token;
  }

  subscribe(
    channel: string,
    onMessage: Subscription['onMessage'],
    lastId: number,
  ): () => void {
    const entry = { onMessage, lastId };
    this.subscribeCalls.push({ channel, lastId });
    this.subscriptions.set(channel, [
      ...(this.subscriptions.get(channel) ?? []),
      entry,
    ]);
    return () => {
      const rest = (this.subscriptions.get(channel) ?? []).filter(
        (other) => other !== entry,
      );
      if (rest.length) this.subscriptions.set(channel, rest);
      else this.subscriptions.delete(channel);
    };
  }

  isSubscribed(channel: string): boolean {
    return (this.subscriptions.get(channel)?.length ?? 0) > 0;
  }

  /** Delivers message `messageId` of bus channel `channel` (e.g. `/presence/site/online`). */
  publish(channel: string, messageId: number, data: unknown): void {
    for (const { onMessage } of this.subscriptions.get(channel) ?? [])
      onMessage(data, messageId);
  }

  destroy(): void {
    this.destroyed = true;
    this.subscriptions.clear();
  }
}
