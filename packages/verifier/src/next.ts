/**
 * Next.js route handlers (App Router), written against the Web Request and Response only, so it
 * needs no `next` install and works in any runtime with those (Node 20, edge, Deno, Bun):
 *
 *   export const GET = withAccessToken(async (request, { auth }) => Response.json({ user: auth.sub }), { issuer, audience });
 */
import { authenticate, refusal, verifierFor, type AccessTokenClaims, type AccessTokenVerifier, type VerifierOptions } from './index.js';

/** Next.js passes `{ params }` as the second argument of a route handler; it is passed on with `auth` added. */
export type AuthenticatedHandler<Context> = (request: Request, context: Context & { auth: AccessTokenClaims }) => Response | Promise<Response>;

/** Wraps a route handler: a request without a valid access token gets a 401 problem+json instead. */
export function withAccessToken<Context extends object = Record<string, unknown>>(
  handler: AuthenticatedHandler<Context>,
  options: VerifierOptions | AccessTokenVerifier,
): (request: Request, context?: Context) => Promise<Response> {
  const verifier = verifierFor(options);
  return async (request, context) => {
    const result = await accessTokenOf(request, verifier);
    if (result instanceof Response) return result;
    return handler(request, { ...((context ?? {}) as Context), auth: result });
  };
}

/** The request's verified claims, or the refusal to answer with (for handlers that do more than one thing). */
export async function accessTokenOf(request: Request, options: VerifierOptions | AccessTokenVerifier): Promise<AccessTokenClaims | Response> {
  try {
    return await authenticate(request.headers.get('authorization'), verifierFor(options));
  } catch (err) {
    const { status, headers, body } = refusal(err);
    return new Response(JSON.stringify(body), { status, headers });
  }
}

export type { AccessTokenClaims, VerifierOptions } from './index.js';
