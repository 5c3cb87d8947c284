import 'message-bus-client';
import type {
  MessageBus as MessageBusClient,
  MessageBusAjaxOptions,
  MessageBusCallback,
  MessageBusRequest,
} from 'message-bus-client';

/**
 * The `message-bus-client` singleton. The package is a UMD script whose both branches set
 * `self.MessageBus`, but only some bundlers can see it as an export (ember-auto-import's webpack can,
 * Vite cannot), so it is imported for its effect and read from the global, which works under both.
 */
export const MessageBus = (
  globalThis as unknown as { MessageBus: MessageBusClient }
).MessageBus;

/**
 * The transport seam: how the service follows change messages and which client id it reports. The
 * default wraps `message-bus-client`; tests and the test-support fake register their own under
 * `ember-presence:bus` (with `instantiate: false`) before the service is first looked up.
 *
 * @example
 * const published = new Map();
 * owner.register('ember-presence:bus', {
 *   clientId: 'test-client',
 *   subscribe(channel, onMessage, lastId) { published.set(channel, onMessage); return () => published.delete(channel); },
 * }, { instantiate: false });
 */
export interface PresenceBus {
  /** The id this tab reports as `client_id`. */
  readonly clientId: string;
  /**
   * Delivers every message of `channel` with an id greater than `lastId` (0 = the whole backlog), in
   * order, to `onMessage`. Returns a function that stops the delivery.
   */
  subscribe(
    channel: string,
    onMessage: (data: unknown, messageId: number) => void,
    lastId: number,
  ): () => void;
  /**
   * The bearer token polls must carry as `Authorization` (`null`: none), so that a cross-origin presence
   * server knows who polls. Called by `presence.setAuthToken`.
   */
  setAuthToken?(token: string | null): void;
  /** Called when the service is destroyed. */
  destroy?(): void;
}

export interface MessageBusAdapterOptions {
  baseUrl: string;
  /** Configure and start the bus (true), or leave that to the app (false). */
  start: boolean;
  /** Let polls stream their answer (`MessageBus.enableChunkedEncoding`); applied when starting. */
  chunked: boolean;
  credentials: RequestCredentials;
}

/**
 * `PresenceBus` over the `message-bus-client` singleton. Nothing touches the bus until the first
 * subscription, so pages that never subscribe never poll.
 */
export function createMessageBusAdapter(
  options: MessageBusAdapterOptions,
): PresenceBus {
  const ours = new Set<{ channel: string; callback: MessageBusCallback }>();
  let startedByUs = false;
  let authorization: string | undefined;

  const ensureStarted = () => {
    if (!options.start || startedByUs) return;
    MessageBus.baseUrl = options.baseUrl;
    MessageBus.enableChunkedEncoding = options.chunked;
    // No jQuery in an Ember app: give the bus a fetch-free XHR transport (it needs progress events for
    // chunked streaming, which fetch cannot give it here).
    if (!MessageBus.ajax)
      MessageBus.ajax = (ajaxOptions) =>
        xhrAjax(ajaxOptions, options.credentials);
    MessageBus.start();
    startedByUs = true;
  };

  return {
    get clientId() {
      return MessageBus.clientId;
    },
    subscribe(channel, onMessage, lastId) {
      ensureStarted();
      const callback: MessageBusCallback = (data, _globalId, messageId) =>
        onMessage(data, messageId);
      const entry = { channel, callback };
      ours.add(entry);
      MessageBus.subscribe(channel, callback, lastId);
      return () => {
        if (!ours.delete(entry)) return;
        MessageBus.unsubscribe(channel, callback);
      };
    },
    setAuthToken(token) {
      // message-bus-client sends `MessageBus.headers` with every poll, whichever transport it uses.
      authorization = token === null ? undefined : `Bearer ${token}`;
      if (authorization === undefined)
        delete MessageBus.headers['Authorization'];
      else MessageBus.headers['Authorization'] = authorization;
    },
    destroy() {
      for (const { channel, callback } of ours)
        MessageBus.unsubscribe(channel, callback);
      ours.clear();
      // Take back only the header we set (the app may set its own on a shared bus).
      if (
        authorization !== undefined &&
        MessageBus.headers['Authorization'] === authorization
      )
        delete MessageBus.headers['Authorization'];
      authorization = undefined;
      // Stop only a bus we started and nobody else uses: another part of the app may share it.
      if (startedByUs && MessageBus.callbacks.length === 0) MessageBus.stop();
      startedByUs = false;
    },
  };
}

/**
 * The jQuery.ajax subset `message-bus-client` calls: a form-encoded POST whose JSON (or, when streaming,
 * text) answer goes to `success`, with `error(xhr, 'abort' | 'error')` and then `complete()`.
 */
function xhrAjax(
  options: MessageBusAjaxOptions,
  credentials: RequestCredentials,
): MessageBusRequest {
  const xhr = new XMLHttpRequest();
  let aborted = false;
  xhr.open(options.type, options.url, true);
  xhr.withCredentials = credentials === 'include';
  xhr.setRequestHeader(
    'Content-Type',
    'application/x-www-form-urlencoded; charset=UTF-8',
  );
  xhr.setRequestHeader('X-Requested-With', 'XMLHttpRequest');
  for (const [name, value] of Object.entries(options.headers))
    xhr.setRequestHeader(name, value);
  if (options.messageBus.chunked) options.messageBus.onProgressListener(xhr);

  // Completes exactly once, on whichever of load / error / abort / timeout comes first. Not on
  // readystatechange: an aborted request of pretender's fake XHR goes back to readyState 0 and never
  // reaches 4, and a transport that never calls `complete()` stops message-bus-client for good.
  let completed = false;
  const finish = (outcome: 'load' | 'error' | 'abort' | 'timeout') => {
    if (completed) return;
    completed = true;
    try {
      if (
        outcome === 'load' &&
        !aborted &&
        xhr.status >= 200 &&
        xhr.status < 300
      ) {
        let body: unknown = xhr.responseText;
        if (options.dataType === 'json') {
          try {
            body = JSON.parse(xhr.responseText);
          } catch {
            options.error(xhr, 'parsererror');
            return;
          }
        }
        options.success(body);
      } else {
        options.error(
          xhr,
          aborted || outcome === 'abort'
            ? 'abort'
            : outcome === 'timeout'
              ? 'timeout'
              : 'error',
        );
      }
    } finally {
      options.complete();
    }
  };
  xhr.addEventListener('load', () => finish('load'));
  xhr.addEventListener('error', () => finish('error'));
  xhr.addEventListener('abort', () => finish('abort'));
  xhr.addEventListener('timeout', () => finish('timeout'));

  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(options.data)) {
    // Channel ids and `__seq` are numbers; null/undefined ("from now") is sent empty.
    body.append(
      key,
      typeof value === 'number' || typeof value === 'string'
        ? String(value)
        : '',
    );
  }
  xhr.send(body.toString());

  return {
    abort() {
      aborted = true;
      xhr.abort();
    },
  };
}
