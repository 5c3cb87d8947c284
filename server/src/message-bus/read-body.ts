import type { Request } from 'express';
import { HttpError } from '../core/errors.js';
import {
  parsePollBody,
  parsePollFields,
  type PollLimits,
  type PollRequest,
} from '../core/message-bus/index.js';

/**
 * 64 KiB: 200 channels × (256-character name + id), percent-encoded, fit with room; anything larger is not
 * a poll.
 */
export const DEFAULT_POLL_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * Reads and parses a poll body. The router is mounted in apps that may or may not run their own body
 * parsers before it, so: if something already consumed the stream, use what it left in `req.body` (an
 * object from `express.json()`/`express.urlencoded()`, a string from `express.text()`, a Buffer from
 * `express.raw()`); otherwise read the stream here, bounded by `limitBytes`.
 *
 * @throws {HttpError} 400 for a malformed body, 413 past the limit, 415 for a compressed body.
 */
export async function readPollRequest(
  req: Request,
  limitBytes: number,
  limits: PollLimits,
): Promise<PollRequest> {
  const contentType = req.headers['content-type'];
  const consumed =
    req.readableEnded || (req as { body?: unknown }).body !== undefined;
  if (consumed) {
    const body: unknown = (req as { body?: unknown }).body;
    if (typeof body === 'string')
      return parsePollBody(body, contentType, limits);
    if (body instanceof Uint8Array)
      return parsePollBody(new TextDecoder().decode(body), contentType, limits);
    if (body === undefined || body === null) return parsePollFields({}, limits);
    return parsePollFields(body, limits);
  }
  const encoding = (
    req.headers['content-encoding'] ?? 'identity'
  ).toLowerCase();
  if (encoding !== 'identity') {
    throw new HttpError(
      415,
      'invalid_parameters',
      `Unsupported Content-Encoding "${encoding}"; send the poll uncompressed.`,
    );
  }
  return parsePollBody(await readText(req, limitBytes), contentType, limits);
}

function tooLarge(limitBytes: number): HttpError {
  return new HttpError(
    413,
    'payload_too_large',
    `The poll body is larger than ${limitBytes} bytes.`,
  );
}

/** The request body as UTF-8 text, at most `limitBytes` bytes. */
function readText(req: Request, limitBytes: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes)
    return Promise.reject(tooLarge(limitBytes));
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        // Stop buffering; the response (413, Connection: close) ends the exchange.
        req.pause();
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    // The client went away before sending the whole body.
    const onClose = (): void => {
      cleanup();
      reject(
        new HttpError(
          400,
          'invalid_parameters',
          'The request was aborted before its body arrived.',
        ),
      );
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
