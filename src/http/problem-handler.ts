import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/errors.js';
import { AppError, bodyNotJson, problemBody, validationFailed, type FieldError } from '../errors.js';
import { messageOf, type ValidationError } from './validation.js';

export const PROBLEM_JSON = 'application/problem+json; charset=utf-8';

export function sendProblem(reply: FastifyReply, err: AppError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.status).type(PROBLEM_JSON).send(JSON.stringify(problemBody(err)));
}

/** One entry per bad field, named as the client sent it, in plain words (see validation.ts). */
function fieldErrors(validation: ValidationError[]): FieldError[] {
  const seen = new Map<string, string>();
  for (const e of validation) {
    let field = e.instancePath.replace(/^\//, '').replaceAll('/', '.');
    if (e.keyword === 'required') field = [field, String(e.params.missingProperty)].filter(Boolean).join('.');
    if (e.keyword === 'additionalProperties') field = [field, String(e.params.additionalProperty)].filter(Boolean).join('.');
    if (!seen.has(field || '(body)')) seen.set(field || '(body)', messageOf(e));
  }
  return [...seen].map(([field, message]) => ({ field, message }));
}

// ASVS 5.0 V16.5.1 (generic message), V16.5.3 (anything unexpected is an error, never a success).
/** Turns anything thrown into a problem+json answer that says nothing internal. */
export function toAppError(err: FastifyError & { validation?: ValidationError[] }): AppError {
  if (err instanceof AppError) return err;
  if (err.validation) return validationFailed(fieldErrors(err.validation));
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return validationFailed([], 'The body length does not match Content-Length.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return bodyNotJson();
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new AppError('not_found');
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON|proto|constructor/i.test(err.message))) {
    return bodyNotJson();
  }
  if (isDatabaseUnavailable(err)) return new AppError('unavailable', { cause: err, headers: { 'retry-after': '1' } });
  if (err.statusCode === 413) return new AppError('payload_too_large');
  if (err.statusCode === 415) return new AppError('unsupported_media_type');
  return new AppError('internal_error', { cause: err });
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const problem = toAppError(err);
    // ASVS 5.0 V16.3.4: unexpected errors are logged; refusals (V16.3.2) reach the application log only.
    if (problem.status >= 500) request.log.error({ err }, problem.code);
    else if (problem.status === 401 || problem.status === 403 || problem.status === 429) request.log.info({ code: problem.code }, 'refused');
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, new AppError('not_found')));
}
