import type { FastifyRequest, RouteOptions } from 'fastify';
import { AppError, validationFailed, type FieldError } from '../errors.js';
import type { App } from './types.js';

declare global {
  interface String {
    /** ES2024, in Node since 20: false when the string holds a lone surrogate. */
    isWellFormed(): boolean;
  }
}

/** Methods whose requests may carry a body Fastify parses. */
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * A route that takes no input answers an empty body or `{}` as usual, and refuses any field
 * (API.md: an extra field is 400 validation_failed), as a body schema would.
 * ASVS 5.0 V15.3.3 (mass assignment): nothing a client sends is silently ignored.
 */
async function refuseInput(request: FastifyRequest): Promise<void> {
  const body: unknown = request.body;
  if (body === undefined) return;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw validationFailed([{ field: '(body)', message: 'must be object' }]);
  const fields = Object.keys(body);
  if (fields.length > 0) throw validationFailed(fields.map((field) => ({ field, message: 'is not a known field' })));
}

/** A JSON text can only yield a lone surrogate through an escape such as `\ud800` (decoded UTF-8 never has one). */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/**
 * Every key or string of a parsed body that is not well-formed UTF-16, named as the client sent it
 * (`response.id`; `(body)` for the body itself). Such a string cannot be stored or hashed as it
 * is: it would turn into U+FFFD, so that two different passwords would hash alike.
 */
function lonelySurrogates(root: unknown): FieldError[] {
  const message = 'is not valid Unicode (a lone surrogate)';
  if (typeof root === 'string') return root.isWellFormed() ? [] : [{ field: '(body)', message }];
  const found: FieldError[] = [];
  const queue: Array<[object, string]> = root !== null && typeof root === 'object' ? [[root, '']] : [];
  // Breadth first, without recursion: 16 KiB of brackets nest deep.
  for (let i = 0; i < queue.length; i++) {
    const [node, path] = queue[i]!;
    for (const key of Object.keys(node)) {
      const value: unknown = (node as Record<string, unknown>)[key];
      const field = path === '' ? key : `${path}.${key}`;
      if (!key.isWellFormed() || (typeof value === 'string' && !value.isWellFormed())) found.push({ field, message });
      else if (value !== null && typeof value === 'object') queue.push([value, field]);
    }
  }
  return found;
}

/**
 * A body of any media type but JSON is refused (415) unless it is empty: API.md lets a POST that
 * takes no input come with an empty body, with or without a Content-Type. An empty body is then
 * no body, whatever the route (a route that takes JSON answers it as a missing body).
 * Only as much is read as it takes to tell: a Content-Length, or the first non-empty chunk.
 */
function emptyOrUnsupported(request: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: unknown) => void): void {
  const length = request.headers['content-length'];
  if (length !== undefined) {
    done(Number(length) === 0 ? null : new AppError('unsupported_media_type'), undefined);
    return;
  }
  const finish = (err: Error | null): void => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', finish);
    done(err, undefined);
  };
  const onData = (chunk: Buffer | string): void => {
    if (chunk.length > 0) finish(new AppError('unsupported_media_type'));
  };
  const onEnd = (): void => finish(null);
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', finish);
  payload.resume();
}

/** The rules for request bodies; before any route is added. */
export function registerBodyRules(app: App): void {
  // JSON bodies: an empty one is no input (API.md: a POST that takes no input accepts it);
  // __proto__ and constructor keys are refused, not parsed.
  // ASVS 5.0 V15.3.6 (prototype pollution).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // JSON is the only body the API takes: text/plain and the rest answer 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text === '') return done(null, undefined);
    return parseJson(request, text, (err, value) => {
      if (err || !SURROGATE_ESCAPE.test(text)) return done(err, value);
      const bad = lonelySurrogates(value);
      if (bad.length === 0) return done(null, value);
      return done(validationFailed(bad, 'The body has a string that is not valid Unicode (a lone surrogate).'), undefined);
    });
  });
  app.addContentTypeParser('*', emptyOrUnsupported);

  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.schema?.body !== undefined || !methods.some((m) => WRITE_METHODS.has(m))) return;
    const given = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [refuseInput, ...given];
  });
}
