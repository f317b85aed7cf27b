import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { App } from '../../src/http/types.js';

/** A message as a reader sees it. */
export interface ReceivedMail {
  to: string;
  from: string;
  subject: string;
  text: string;
  html: string;
  raw: string;
}

async function parse(raw: Buffer): Promise<ReceivedMail> {
  const mail = await simpleParser(raw);
  const to = Array.isArray(mail.to) ? mail.to.map((a) => a.text).join(', ') : (mail.to?.text ?? '');
  return { to, from: mail.from?.text ?? '', subject: mail.subject ?? '', text: mail.text ?? '', html: typeof mail.html === 'string' ? mail.html : '', raw: raw.toString('utf8') };
}

/** Waits until the service has sent everything it queued (after its answers). */
export async function mailSettled(app: App): Promise<void> {
  // Reset requests start their work just after their answer has gone: let it start first.
  await new Promise((resolve) => setTimeout(resolve, 10));
  await app.accountJobs.idle();
  await app.mailer.idle();
}

/** A fresh outbox directory, and the messages in it. */
export class Outbox {
  readonly dir = mkdtempSync(join(tmpdir(), 'ums-outbox-'));

  async messages(to?: string): Promise<ReceivedMail[]> {
    let files: string[];
    try {
      files = readdirSync(this.dir).filter((f) => f.endsWith('.eml')).sort();
    } catch {
      return [];
    }
    const all = await Promise.all(files.map((f) => parse(readFileSync(join(this.dir, f)))));
    return to === undefined ? all : all.filter((m) => m.to.toLowerCase() === to.toLowerCase());
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A real SMTP server on a free port; `refuse` says how many deliveries to refuse first. */
export async function startSmtpServer(options: { refuse?: number } = {}): Promise<{ url: string; messages: ReceivedMail[]; attempts: () => number; close: () => Promise<void> }> {
  const messages: ReceivedMail[] = [];
  let attempts = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onMailFrom(_address, _session, callback) {
      attempts += 1;
      if (attempts <= (options.refuse ?? 0)) {
        const err = Object.assign(new Error('try again later'), { responseCode: 451 });
        return callback(err);
      }
      callback();
    },
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        parse(Buffer.concat(chunks)).then((m) => {
          messages.push(m);
          callback();
        }, callback);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return { url: `smtp://127.0.0.1:${port}`, messages, attempts: () => attempts, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The token of the link to `page` in a message's text, checking the link's shape. */
export function tokenFrom(mail: ReceivedMail, page: 'verify-email' | 'reset-password', publicUrl = 'http://localhost:3000'): string {
  const escaped = `${publicUrl}/${page}`.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`${escaped}#token=([A-Za-z0-9_-]+)`).exec(mail.text);
  if (!match) throw new Error(`no ${page} link in: ${mail.text}`);
  return match[1]!;
}
