import type { FastifyRequest, RouteOptions } from 'fastify';
import { AppError, validationFailed } from '../errors.js';
import type { App } from './types.js';

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
    if (body === '') return done(null, undefined);
    return parseJson(request, body as string, done);
  });
  app.addContentTypeParser('*', emptyOrUnsupported);

  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.schema?.body !== undefined || !methods.some((m) => WRITE_METHODS.has(m))) return;
    const given = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [refuseInput, ...given];
  });
}
