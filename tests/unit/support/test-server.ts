import Pretender from 'pretender';

type Response = [number, Record<string, string>, string];

/** One `POST /presence/update` as the server saw it. */
export interface UpdateRequest {
  clientId: string | null;
  present: string[];
  leave: string[];
  headers: Record<string, string>;
}

/**
 * A programmable pretender server for the presence endpoints: GET answers from `states`, updates
 * answer `true` except for channels in `refuse`. Tests can queue special answers and hold requests.
 */
export class TestServer {
  readonly pretender: Pretender;
  /** What `GET /presence/get` answers per channel; absent means `null` (not found). */
  readonly states = new Map<string, unknown>();
  /** Channels whose presence the server refuses (answers `false`). */
  readonly refuse = new Set<string>();
  /** Channel names of each GET, in order. */
  readonly gets: string[][] = [];
  readonly updates: UpdateRequest[] = [];
  /** Answers to use for the next updates, before the default. */
  readonly queuedUpdateResponses: Response[] = [];
  #holds: Promise<void>[] = [];

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    this.pretender = new Pretender(function () {
      this.get('/presence/get', (request) => {
        const { url } = request as unknown as { url: string };
        const names = new URL(url, window.location.href).searchParams.getAll(
          'channels[]',
        );
        server.gets.push(names);
        const body: Record<string, unknown> = {};
        for (const name of names) body[name] = server.states.get(name) ?? null;
        return [
          200,
          { 'Content-Type': 'application/json' },
          JSON.stringify(body),
        ];
      });
      this.post('/presence/update', async (request) => {
        const form = new URLSearchParams(request.requestBody);
        const update: UpdateRequest = {
          clientId: form.get('client_id'),
          present: form.getAll('present_channels[]'),
          leave: form.getAll('leave_channels[]'),
          headers: request.requestHeaders,
        };
        server.updates.push(update);
        const hold = server.#holds.shift();
        if (hold) await hold;
        const queued = server.queuedUpdateResponses.shift();
        if (queued) return queued;
        const body: Record<string, boolean> = {};
        for (const name of update.present)
          body[name] = !server.refuse.has(name);
        return [
          200,
          { 'Content-Type': 'application/json' },
          JSON.stringify(body),
        ] as Response;
      });
    });
  }

  /** The next update request waits (in flight) until the returned function is called. */
  holdNextUpdate(): () => void {
    let release!: () => void;
    this.#holds.push(new Promise<void>((resolve) => (release = resolve)));
    return release;
  }

  respondNextUpdateWith(
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    this.queuedUpdateResponses.push([
      status,
      { 'Content-Type': 'application/json', ...headers },
      JSON.stringify(body),
    ]);
  }

  shutdown(): void {
    this.pretender.shutdown();
  }
}

/** A user in wire shape. */
export function user(id: number, username = `user${id}`) {
  return {
    id,
    username,
    name: username.toUpperCase(),
    avatar_template: `/a/${username}/{size}.png`,
  };
}
