import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { toErrorBody, HttpError } from '../core/errors.js';

/**
 * Requests Node's HTTP parser refuses before Express sees them (headers over 16 KB, malformed request
 * lines or headers) are answered in the server's one JSON error shape — 431 `headers_too_large` or 400
 * `invalid_parameters` — instead of Node's bare status line, and the connection is closed. A socket that
 * is already gone is just destroyed.
 *
 * @example
 * const server = createServer(app);
 * answerClientErrorsWithJson(server);
 */
export function answerClientErrorsWithJson(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const error = tooLarge
      ? new HttpError(
          431,
          'headers_too_large',
          'The request headers are larger than this server accepts (16 KB in all).',
        )
      : new HttpError(400, 'invalid_parameters', 'Malformed HTTP request.');
    const body = JSON.stringify(toErrorBody(error));
    socket.end(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  });
}
