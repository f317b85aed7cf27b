import { Type, type TSchema } from 'typebox';
import { PROBLEMS, publicCode, type ProblemName } from '../errors.js';
import { Matching } from './validation.js';

/** Shared pieces of the HTTP schemas (validation, serialisation and OpenAPI come from these). */

export const Id = Matching('^[0-9]+$', 'must be an id, digits only', { description: 'An integer id, as a string.' });
export const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339, UTC.' });

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String({ description: 'A stable, machine-readable error code.' }),
    detail: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details (application/problem+json).' },
);

/**
 * Response schemas for the error answers an operation can give, for the OpenAPI document.
 * Errors are serialised by the error handler, not through these.
 */
export function problems(...names: ProblemName[]): Record<number, { description: string; content: Record<string, { schema: TSchema }> }> {
  const byStatus: Record<number, { description: string; content: Record<string, { schema: TSchema }> }> = {};
  const all = [...names, 'internal_error', 'unavailable'] as ProblemName[];
  for (const status of new Set(all.map((n) => PROBLEMS[n].status))) {
    const codes = all.filter((n) => PROBLEMS[n].status === status).map(publicCode);
    byStatus[status] = { description: [...new Set(codes)].join(', '), content: { 'application/problem+json': { schema: Problem } } };
  }
  return byStatus;
}

export const bearerAuth = [{ bearerAuth: [] }];

/** `DELETE`-style answers with no body. */
export const NoContent = Type.Null({ description: 'No content.' });
