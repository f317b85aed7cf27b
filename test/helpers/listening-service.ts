import { createServer } from 'node:net';
import type { Config } from '../../src/config.js';
import { startTestService, type TestAppOptions, type TestService } from './app.js';

/** A port free at the moment of asking (the service then listens on it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A test service listening on a real port whose PUBLIC_URL (so the tokens' issuer and audience,
 * and where the JWKS is) is that address: for clients and verifiers that speak HTTP to it.
 */
export async function startListeningService(overrides: Partial<Config> = {}, env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestService & { url: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const svc = await startTestService(overrides, { PUBLIC_URL: url, ...env }, options);
    try {
      await svc.app.listen({ port, host: '127.0.0.1' });
      return { ...svc, url };
    } catch (err) {
      await svc.close();
      // Another process took the port between asking and listening: ask again.
      if (attempt >= 3 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}
