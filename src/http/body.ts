import type { FastifyRequest, RouteOptions } from 'fastify';
import { validationFailed } from '../errors.js';
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

/** The rules for request bodies, before any route is added. */
export function registerBodyRules(app: App): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.schema?.body !== undefined || !methods.some((m) => WRITE_METHODS.has(m))) return;
    const given = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [refuseInput, ...given];
  });
}
