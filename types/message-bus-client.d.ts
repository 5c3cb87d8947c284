/**
 * Hand-written types for `message-bus-client` (a UMD script without its own types), covering what
 * ember-presence and apps that share the bus use. The module has no usable export under every bundler
 * (Vite sees none): import it for its effect and use the `self.MessageBus` global it sets, as
 * `addon/-private/bus.ts` does.
 */
declare module 'message-bus-client' {
  /** Called for each message of a subscribed channel. */
  export type MessageBusCallback = (
    data: unknown,
    globalId: number,
    messageId: number,
  ) => void;

  /** The options the bus passes to its `ajax` transport (a jQuery.ajax-shaped subset). */
  export interface MessageBusAjaxOptions {
    url: string;
    data: Record<string, unknown>;
    async: boolean;
    dataType: 'json' | 'text';
    type: 'POST';
    headers: Record<string, string>;
    messageBus: {
      chunked: boolean;
      onProgressListener(xhr: XMLHttpRequest): unknown;
    };
    success(messages: unknown): void;
    error(
      xhr: { status: number; getResponseHeader?(name: string): string | null },
      textStatus: string,
    ): void;
    complete(): void;
  }

  /** What an `ajax` transport returns: something the bus can abort. */
  export interface MessageBusRequest {
    abort(): void;
  }

  export interface MessageBusCallbackEntry {
    channel: string;
    func: MessageBusCallback;
    last_id: number;
  }

  export interface MessageBus {
    /** This tab's random id; also the presence `client_id`. */
    clientId: string;
    baseUrl: string;
    headers: Record<string, string>;
    ajax:
      | ((options: MessageBusAjaxOptions) => MessageBusRequest)
      | false
      | undefined;
    enableLongPolling: boolean;
    enableChunkedEncoding: boolean;
    alwaysLongPoll: boolean;
    callbackInterval: number;
    backgroundCallbackInterval: number;
    minPollInterval: number;
    maxPollInterval: number;
    minHiddenPollInterval: number;
    firstChunkTimeout: number;
    shouldLongPollCallback: (() => boolean) | undefined;
    readonly callbacks: MessageBusCallbackEntry[];
    longPoll: MessageBusRequest | null | undefined;
    /** Starts polling (no-op when already started). */
    start(): void;
    stop(): void;
    pause(): void;
    resume(): void;
    status(): 'paused' | 'started' | 'stopped';
    diagnostics(): void;
    /**
     * `lastId`: `-1` (default) new messages only; `-N` also the last N−1; `0` the whole backlog; `k > 0`
     * messages after id k. Starts the bus if it was never started or stopped.
     */
    subscribe(
      channel: string,
      callback: MessageBusCallback,
      lastId?: number | null,
    ): MessageBusCallback;
    unsubscribe(channel: string, callback?: MessageBusCallback): boolean;
  }
}
