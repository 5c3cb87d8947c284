import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import vm from 'node:vm';

/**
 * Runs the REAL `message-bus-client` (the library the addon ships) in Node: its UMD source is evaluated in
 * a `vm` context that has what it touches at load and run time — `document` (visibility), `XMLHttpRequest`
 * (here a small stand-in over node:http with progress events, so chunked streaming works), timers and
 * `console` — and no `define`, so it attaches `MessageBus` to the context's global. The jQuery-less ajax
 * adapter below is the subset of `jQuery.ajax` the client calls, as the addon provides it in the browser.
 */

/** The parts of the client's API the tests use. */
export interface MessageBusClient {
  baseUrl: string;
  clientId: string;
  enableChunkedEncoding: boolean;
  enableLongPolling: boolean;
  callbackInterval: number;
  minPollInterval: number;
  headers: Record<string, string>;
  callbacks: Array<{ channel: string; last_id: number }>;
  ajax: (options: AjaxOptions) => { abort(): void };
  subscribe(
    channel: string,
    callback: (data: unknown, globalId: number, messageId: number) => void,
    lastId?: number,
  ): void;
  unsubscribe(channel: string): boolean;
  start(): void;
  stop(): void;
  status(): string;
}

/** What the client passes to `ajax` (the jQuery.ajax subset). */
export interface AjaxOptions {
  url: string;
  type: string;
  data: Record<string, unknown>;
  dataType: 'json' | 'text';
  headers: Record<string, string>;
  messageBus: {
    chunked: boolean;
    onProgressListener(xhr: NodeXMLHttpRequest): void;
  };
  success(data: unknown): void;
  error(xhr: NodeXMLHttpRequest, textStatus: string): void;
  complete(): void;
}

/** One request as the server saw it from this harness. */
export interface RecordedRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * A minimal XMLHttpRequest over node:http: `open`, `setRequestHeader`, `send`, `abort`,
 * `getResponseHeader`, `readyState`, `status`, `responseText`, `onprogress` (one event per received
 * piece) and `onreadystatechange`. `onprogress` starts as `null`, which is how the client detects that
 * streaming is possible.
 */
export class NodeXMLHttpRequest {
  static readonly DONE = 4;
  readonly DONE = 4;
  onprogress: (() => void) | null = null;
  onreadystatechange: (() => void) | null = null;
  readyState = 0;
  status = 0;
  statusText = '';
  responseText = '';
  #method = 'GET';
  #url = '';
  #headers: Record<string, string> = {};
  #responseHeaders: http.IncomingHttpHeaders = {};
  #request: http.ClientRequest | null = null;
  #finished = false;

  open(method: string, url: string): void {
    this.#method = method;
    this.#url = url;
    this.readyState = 1;
  }

  setRequestHeader(name: string, value: string): void {
    this.#headers[name] = value;
  }

  getResponseHeader(name: string): string | null {
    const value = this.#responseHeaders[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }

  send(body?: string): void {
    const headers = { ...this.#headers };
    if (body !== undefined)
      headers['Content-Length'] = String(Buffer.byteLength(body));
    const request = http.request(
      this.#url,
      { method: this.#method, headers, agent: false },
      (res) => {
        this.status = res.statusCode ?? 0;
        this.statusText = res.statusMessage ?? '';
        this.#responseHeaders = res.headers;
        this.readyState = 2;
        this.onreadystatechange?.();
        res.setEncoding('utf8');
        res.on('data', (piece: string) => {
          if (this.#finished) return;
          this.responseText += piece;
          this.readyState = 3;
          this.onprogress?.();
        });
        res.on('end', () => this.#finish());
        res.on('error', () => this.#fail());
      },
    );
    request.on('error', () => this.#fail());
    this.#request = request;
    request.end(body);
  }

  abort(): void {
    if (this.#finished) return;
    this.#request?.destroy();
    this.#fail();
  }

  #fail(): void {
    if (this.#finished) return;
    this.status = 0;
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.readyState = 4;
    this.onreadystatechange?.();
  }
}

/**
 * The ajax adapter: a form-encoded POST; JSON or text to `success`; `error(xhr, 'abort' | 'error')`;
 * always `complete()`. Records every request for assertions.
 */
function ajaxAdapter(
  XHR: typeof NodeXMLHttpRequest,
  recorded: RecordedRequest[],
) {
  return (options: AjaxOptions): { abort(): void } => {
    const xhr = new XHR();
    let aborted = false;
    xhr.open(options.type, options.url);
    const headers: Record<string, string> = {
      'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8',
      ...options.headers,
    };
    for (const [name, value] of Object.entries(headers))
      xhr.setRequestHeader(name, value);
    if (options.messageBus.chunked) options.messageBus.onProgressListener(xhr);
    xhr.onreadystatechange = () => {
      if (xhr.readyState !== NodeXMLHttpRequest.DONE) return;
      try {
        if (!aborted && xhr.status >= 200 && xhr.status < 300) {
          options.success(
            options.dataType === 'json'
              ? JSON.parse(xhr.responseText)
              : xhr.responseText,
          );
        } else {
          options.error(xhr, aborted ? 'abort' : 'error');
        }
      } finally {
        options.complete();
      }
    };
    const form = new URLSearchParams();
    for (const [key, value] of Object.entries(options.data)) {
      form.append(
        key,
        typeof value === 'number' || typeof value === 'string'
          ? String(value)
          : '',
      );
    }
    const body = form.toString();
    recorded.push({ url: options.url, headers, body });
    xhr.send(body);
    return {
      abort() {
        aborted = true;
        xhr.abort();
      },
    };
  };
}

const clientSource = readFileSync(
  createRequire(import.meta.url).resolve('message-bus-client'),
  'utf8',
);

/**
 * A fresh `message-bus-client` (its state is module-global, so one per test) pointed at `origin`, with
 * the visible-tab defaults of a browser. `requests` lists every poll it sent.
 */
export function loadMessageBusClient(origin: string): {
  bus: MessageBusClient;
  requests: RecordedRequest[];
} {
  const requests: RecordedRequest[] = [];
  const document = {
    hidden: false,
    hasFocus: true,
    addEventListener() {},
    removeEventListener() {},
  };
  const context = vm.createContext({
    document,
    XMLHttpRequest: NodeXMLHttpRequest,
    setTimeout,
    clearTimeout,
    console,
  });
  vm.runInContext(clientSource, context, { filename: 'message-bus.js' });
  const bus = (context as { MessageBus?: MessageBusClient }).MessageBus;
  if (!bus)
    throw new Error(
      'message-bus-client did not attach MessageBus to the global object',
    );
  bus.baseUrl = `${origin}/`;
  bus.ajax = ajaxAdapter(NodeXMLHttpRequest, requests);
  return { bus, requests };
}
