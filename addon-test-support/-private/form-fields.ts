/**
 * What a pretender request carries as its body, turned into the plain field object the server's
 * transport-agnostic handlers accept, in the shape Express (`qs`) and pretender's query parser give: a list
 * field (`present_channels[]=a&present_channels[]=b`) is an array under its bare name
 * (`present_channels: ['a', 'b']`) even with one item; any other field a string; a JSON body its parsed
 * value.
 */
export function bodyFields(
  body: unknown,
  contentType: string | undefined,
): unknown {
  if (body === null || body === undefined || body === '') return {};
  if (typeof body === 'string') {
    if (contentType?.includes('json')) {
      try {
        return JSON.parse(body) as unknown;
      } catch {
        return body; // the handler answers 400 for a body that is not an object
      }
    }
    return collect(new URLSearchParams(body));
  }
  const params = formParams(body);
  return params ? collect(params) : body;
}

/** A URLSearchParams or FormData body as URLSearchParams (FormData's file fields are left out); else undefined. */
function formParams(body: unknown): URLSearchParams | undefined {
  if (body instanceof URLSearchParams) return body;
  if (typeof FormData !== 'undefined' && body instanceof FormData) {
    const params = new URLSearchParams();
    body.forEach((value, key) => {
      if (typeof value === 'string') params.append(key, value);
    });
    return params;
  }
  return undefined;
}

function collect(params: URLSearchParams): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = Object.create(
    null,
  ) as Record<string, string | string[]>;
  for (const [sent, value] of params) {
    const list = sent.endsWith('[]');
    const key = list ? sent.slice(0, -2) : sent;
    const existing = fields[key];
    if (Array.isArray(existing)) existing.push(value);
    else if (existing === undefined) fields[key] = list ? [value] : value;
    else fields[key] = [existing, value];
  }
  return fields;
}

/** The body text of a pretender request, for the message-bus poll parser. */
export function bodyText(body: unknown): string {
  if (typeof body === 'string') return body;
  const params = formParams(body);
  if (params) return params.toString();
  return body === null || body === undefined ? '' : JSON.stringify(body);
}
