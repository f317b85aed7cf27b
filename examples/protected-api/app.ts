/**
 * A small API of orders that accepts the service's access tokens: the verifier's Express
 * middleware guards every /orders route, and the claims say whose orders they are.
 */
import express, { type Express } from 'express';
import { requireAccessToken, type VerifierOptions } from '@user-management/verifier/express';

/**
 * The verifier's settings from the environment: AUTH_ISSUER is the service's issuer (its
 * PUBLIC_URL), AUTH_AUDIENCE its JWT_AUDIENCE (its PUBLIC_URL unless set). Every request's
 * session is asked for (no cache), so a logout counts at once; a busy API would keep the
 * verifier's default of reusing an "active" answer for a second. CHECK_SESSION=false trusts
 * tokens until they expire.
 */
export function verifierSettings(env: Record<string, string | undefined>): VerifierOptions {
  const issuer = env.AUTH_ISSUER ?? 'http://localhost:3000';
  return { issuer, audience: env.AUTH_AUDIENCE ?? issuer, checkSession: env.CHECK_SESSION !== 'false', sessionCacheMs: 0 };
}

export function createProtectedApi(verifier: VerifierOptions): Express {
  const app = express();
  app.use(express.json());
  const orders = new Map<string, Array<{ item: string }>>(); // user id → orders (in memory: an example)

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // The three lines that protect a route: the middleware, then req.auth in the handler.
  app.use('/orders', requireAccessToken(verifier));
  app.get('/orders', (req, res) => {
    res.json({ user: req.auth!.sub, orders: orders.get(req.auth!.sub) ?? [] });
  });
  app.post('/orders', (req, res) => {
    const item = typeof req.body?.item === 'string' ? req.body.item : 'something';
    const mine = orders.get(req.auth!.sub) ?? [];
    mine.push({ item });
    orders.set(req.auth!.sub, mine);
    res.status(201).json({ item });
  });
  return app;
}
