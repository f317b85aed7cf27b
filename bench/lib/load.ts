import autocannon from 'autocannon';
import type { CpuSnapshot } from './processes.js';

export interface LoadResult {
  route: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  requests: number;
  /** CPU milliseconds per request: the service's main thread, its other threads, the database server. */
  cpuPerRequest?: CpuSnapshot;
}

export interface LoadOptions {
  route: string;
  url: string;
  connections: number;
  durationS: number;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  /** Builds each request's headers and body. */
  setup?: () => { headers?: Record<string, string>; body?: string; path?: string };
  /** Sees each response (for chains such as refresh tokens). */
  onResponse?: (status: number, body: string) => void;
  /** A cheap URL of the same server to poll until it is idle again (default: the route's URL). */
  settleUrl?: string;
  /** Reads the CPU time spent so far, to report it per request. */
  cpu?: () => CpuSnapshot;
}

/**
 * Waits until the server has worked off what the last run left queued (requests still in
 * flight when autocannon stopped), so one route's backlog never counts against the next.
 */
export async function settle(url: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const start = Date.now();
    await fetch(url).catch(() => undefined);
    if (Date.now() - start < 50) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Drives one route with autocannon and reports throughput and latency. */
export async function load(options: LoadOptions): Promise<LoadResult> {
  const cpuBefore = options.cpu?.();
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationS,
    method: options.method ?? 'GET',
    headers: options.headers,
    requests: [
      {
        method: options.method ?? 'GET',
        ...(options.setup
          ? {
              setupRequest: (request: Record<string, unknown>) => {
                const { headers, body, path } = options.setup!();
                return { ...request, headers: { ...(request.headers as object), ...headers }, body, ...(path ? { path } : {}) };
              },
            }
          : {}),
        ...(options.onResponse ? { onResponse: (status: number, body: string) => options.onResponse!(status, body) } : {}),
      },
    ],
  } as autocannon.Options);
  if (result.non2xx > 0) {
    const statuses = (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {};
    process.stderr.write(`    ${options.route}: answers by status ${JSON.stringify(Object.fromEntries(Object.entries(statuses).map(([code, { count }]) => [code, count])))}\n`);
  }
  await settle(options.settleUrl ?? options.url);
  const cpuAfter = options.cpu?.();
  const per = (key: keyof CpuSnapshot) => Math.round(((cpuAfter![key] - cpuBefore![key]) / Math.max(1, result.requests.total)) * 1000) / 1000;
  return {
    ...(cpuBefore ? { cpuPerRequest: { main: per('main'), threads: per('threads'), database: per('database') } } : {}),
    route: options.route,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    requests: result.requests.total,
  };
}
