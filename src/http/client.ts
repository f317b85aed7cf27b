import type { FastifyRequest } from 'fastify';
import type { ClientInfo } from '../sessions/service.js';

/** Who is asking, as the audit log and the session rows record it. */
export function clientOf(request: FastifyRequest): ClientInfo {
  return { ip: request.ip ?? null, userAgent: request.headers['user-agent'] ?? null };
}
