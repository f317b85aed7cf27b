import type { FastifyRequest } from 'fastify';

/** Who is asking, as the audit log and the session rows record it. */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
}

/** The caller of a protected route, once its token and session checked out. */
export interface Caller extends ClientInfo {
  userId: string;
  sessionId: string;
}

/** Who is asking, from the request (its address as TRUST_PROXY allows, and its user agent). */
export function clientOf(request: FastifyRequest): ClientInfo {
  return { ip: request.ip ?? null, userAgent: request.headers['user-agent'] ?? null };
}
