import { isUtf8 } from 'node:buffer';
import type { FastifyRequest, RouteOptions } from 'fastify';
import { AppError, bodyNotJson, MAX_FIELD_ERRORS, validationFailed, type FieldError } from '../errors.js';
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
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw validationFailed([{ field: '(body)', message: 'must be a JSON object' }]);
  const fields = Object.keys(body);
  if (fields.length > 0) throw validationFailed(fields.map((field) => ({ field, message: 'is not a known field' })));
}

/**
 * What the walk below looks for can only come from a JSON text that has one of these: a lone
 * surrogate only from an escape such as `\ud800` (decoded UTF-8 never holds one), a `__proto__`
 * or `constructor` key written out or spelt with escapes.
 */
const SUSPECT = /\\u|__proto__|constructor/;

const NOT_ALLOWED = 'is not allowed';
const NOT_UNICODE = 'is not valid Unicode (a lone surrogate)';

/**
 * The keys of a parsed body that could reach a prototype once merged into an object (`__proto__`,
 * and `constructor` holding a `prototype`), and the keys and strings that are not well-formed
 * UTF-16, each named as the client sent it (`response.id`; `(body)` for the body itself). A lone
 * surrogate cannot be stored or hashed as it is: it would turn into U+FFFD, so that two different
 * passwords would hash alike.
 * ASVS 5.0 V15.3.6 (prototype pollution).
 */
function refusals(root: unknown): { keys: FieldError[]; strings: FieldError[] } {
  const keys: FieldError[] = [];
  const strings: FieldError[] = [];
  if (typeof root === 'string' && !root.isWellFormed()) strings.push({ field: '(body)', message: NOT_UNICODE });
  const queue: Array<[object, string]> = root !== null && typeof root === 'object' ? [[root, '']] : [];
  // Breadth first, without recursion: 16 KiB of brackets nest deep.
  for (let i = 0; i < queue.length && keys.length + strings.length < MAX_FIELD_ERRORS; i++) {
    const [node, path] = queue[i]!;
    const at = (key: string) => (path === '' ? key : `${path}.${key}`);
    // JSON.parse makes `__proto__` an own property; nothing has been merged anywhere yet.
    if (Object.hasOwn(node, '__proto__')) keys.push({ field: at('__proto__'), message: NOT_ALLOWED });
    const ctor: unknown = Object.hasOwn(node, 'constructor') ? (node as { constructor: unknown }).constructor : undefined;
    if (ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) keys.push({ field: at('constructor.prototype'), message: NOT_ALLOWED });
    for (const key of Object.keys(node)) {
      const value: unknown = (node as Record<string, unknown>)[key];
      if (!key.isWellFormed() || (typeof value === 'string' && !value.isWellFormed())) strings.push({ field: at(key), message: NOT_UNICODE });
      else if (value !== null && typeof value === 'object') queue.push([value, at(key)]);
    }
  }
  return { keys, strings };
}

/**
 * A JSON body as a value, or why it is refused: not UTF-8; not JSON; a key that could reach a
 * prototype; a string that is not valid Unicode. An empty body is no body.
 */
function parseJsonBody(bytes: Buffer): { value: unknown } | { refused: AppError } {
  if (bytes.length === 0) return { value: undefined };
  // RFC 8259 §8.1: JSON text exchanged is UTF-8. Decoding anything else would put U+FFFD in
  // place of the bytes it cannot read, as with a lone surrogate.
  if (!isUtf8(bytes)) return { refused: validationFailed([{ field: '(body)', message: 'is not valid UTF-8' }], 'The body is not valid UTF-8.') };
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    // A byte order mark is allowed (RFC 8259 §8.1: ignored, not an error), as Fastify's parser did.
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    return { refused: bodyNotJson() };
  }
  if (!SUSPECT.test(text)) return { value };
  const { keys, strings } = refusals(value);
  if (keys.length > 0) return { refused: validationFailed(keys, 'The body has a key that is not allowed (__proto__ or constructor.prototype).') };
  if (strings.length > 0) return { refused: validationFailed(strings, 'The body has a string that is not valid Unicode (a lone surrogate).') };
  return { value };
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
  // JSON is the only body the API takes: text/plain and the rest answer 415 unless empty.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    const parsed = parseJsonBody(body as Buffer);
    if ('refused' in parsed) done(parsed.refused, undefined);
    else done(null, parsed.value);
  });
  app.addContentTypeParser('*', emptyOrUnsupported);

  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.schema?.body !== undefined || !methods.some((m) => WRITE_METHODS.has(m))) return;
    const given = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [refuseInput, ...given];
  });
}
