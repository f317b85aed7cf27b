import type { FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../core/clock.js';

/**
 * Cookie mode for browser apps (OWASP: keep the refresh token out of JavaScript). A client that
 * sends `X-Token-Delivery: cookie` when it signs in or refreshes gets its refresh token in an
 * HttpOnly, SameSite=Strict cookie scoped to /v1/sessions instead of in the body, and refreshes
 * with the same header and no body. The header is the CSRF defence beside SameSite: a cross-site
 * form cannot set it, and a cross-site script cannot send it without a CORS preflight we refuse.
 */
export const COOKIE_MODE_HEADER = 'x-token-delivery';
/** Over https the name carries the `__Secure-` prefix (ASVS 5.0 V3.3.1); `__Host-` would forbid the path scope. */
export const REFRESH_COOKIE = 'ums_refresh';
const COOKIE_PATH = '/v1/sessions';

export class RefreshCookie {
  readonly name: string;

  constructor(
    /** `Secure` when the service is reached over HTTPS (PUBLIC_URL). */
    private readonly secure: boolean,
    /** Max-Age counts to the session's expiry from now. */
    private readonly clock: Clock = systemClock,
  ) {
    this.name = secure ? `__Secure-${REFRESH_COOKIE}` : REFRESH_COOKIE;
  }

  /** True when the client asked for cookie mode. */
  requested(request: FastifyRequest): boolean {
    return request.headers[COOKIE_MODE_HEADER] === 'cookie';
  }

  /** The refresh token from the cookie, only in cookie mode (never on a bare cookie). */
  read(request: FastifyRequest): string | undefined {
    return this.requested(request) ? request.cookies[this.name] : undefined;
  }

  /** In cookie mode, moves the refresh token from the body into the cookie. */
  deliver<T extends { refresh_token?: string; session: { expires_at: string } }>(request: FastifyRequest, reply: FastifyReply, pair: T): T {
    if (!this.requested(request)) return pair;
    return this.put(reply, pair);
  }

  /** Moves the refresh token into the cookie whatever the request asked (a sign-in by a browser redirect, federation/routes.ts). */
  put<T extends { refresh_token?: string; session: { expires_at: string } }>(reply: FastifyReply, pair: T): T {
    if (pair.refresh_token === undefined) return pair;
    // The cookie lives as long as its session, not a second longer.
    const maxAgeS = Math.max(0, Math.floor((Date.parse(pair.session.expires_at) - this.clock.now()) / 1000));
    reply.setCookie(this.name, pair.refresh_token, this.#options(maxAgeS));
    const { refresh_token: _inCookie, ...rest } = pair;
    return rest as T;
  }

  /** Drops the cookie if the request carried one (logout, a refused refresh). */
  clear(request: FastifyRequest, reply: FastifyReply): void {
    if (request.cookies[this.name] !== undefined) reply.setCookie(this.name, '', this.#options(0));
  }

  #options(maxAge: number) {
    return { path: COOKIE_PATH, httpOnly: true, sameSite: 'strict' as const, secure: this.secure, maxAge };
  }
}
