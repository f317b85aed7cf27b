import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** A delivery as the receiver got it. */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: { type: string; timestamp: string; data: Record<string, unknown> };
}

/**
 * A webhook receiver on 127.0.0.1: records every request, and answers each with the next status of
 * `answers` (then 200), or never answers when the status is 'hang'.
 */
export async function startReceiver(answers: Array<number | 'hang'> = [], port = 0): Promise<{
  url: string;
  port: number;
  received: Received[];
  answer: (...next: Array<number | 'hang'>) => void;
  close: () => Promise<void>;
}> {
  const received: Received[] = [];
  const queue = [...answers];
  const hanging = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body, json: JSON.parse(body) });
      const status = queue.shift() ?? 200;
      if (status === 'hang') {
        hanging.add(() => res.destroy());
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const listening = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${listening}/hook`,
    port: listening,
    received,
    answer: (...next) => queue.push(...next),
    close: async () => {
      for (const end of hanging) end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Verifies a delivery with the Standard Webhooks library (its own TypeScript package), as a
 * receiver would, at the time `nowMs` (the library checks the timestamp against its clock).
 */
export function verifyDelivery(secret: string, delivery: Received, nowMs: number): unknown {
  const realNow = Date.now;
  Date.now = () => nowMs;
  try {
    return new Webhook(secret).verify(delivery.body, {
      'webhook-id': String(delivery.headers['webhook-id']),
      'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
      'webhook-signature': String(delivery.headers['webhook-signature']),
    });
  } finally {
    Date.now = realNow;
  }
}
