import { Registry, collectDefaultMetrics, Histogram } from 'prom-client';
import type { App } from './types.js';

let processRegistry: Registry | undefined;

/** The process's own metrics (memory, event loop, GC), collected once however many apps it builds. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Prometheus metrics: process defaults plus request counts and latencies per route. */
export function registerMetrics(app: App): Registry {
  const registry = new Registry();
  const defaults = processMetrics();
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status.',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: label values stay few and carry no ids.
    duration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text format)', tags: ['operations'], produces: ['text/plain'] } }, async (_request, reply) => {
    return reply.type(registry.contentType).send((await defaults.metrics()) + '\n' + (await registry.metrics()));
  });
  return registry;
}
