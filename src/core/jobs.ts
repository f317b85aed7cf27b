import type { FastifyInstance } from 'fastify';

/** How often features drop state that no longer matters (old throttling windows, used tokens...). */
export const PRUNE_EVERY_MS = 10 * 60_000;

/**
 * A background job of a feature: `run` every `everyMs`, off the request path, never keeping the
 * process alive, stopped when the app closes. A failure is logged and the next run tries again.
 */
export function backgroundJob(app: FastifyInstance, name: string, everyMs: number, run: () => Promise<unknown>): void {
  const timer = setInterval(() => {
    run().catch((err: unknown) => app.log.warn({ err }, `${name} failed`));
  }, everyMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}
