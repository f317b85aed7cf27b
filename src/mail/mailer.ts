import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';

/**
 * Outgoing mail (API-ACCOUNT.md, Mail): through SMTP when SMTP_URL is set, else as .eml files in
 * DATA_DIR/outbox, so every flow can be followed on a laptop. Sending is off the request path: a
 * request only puts the message in this process's queue; a failed delivery is tried again,
 * backing off, and never fails or slows the request that caused it.
 */

export interface MailMessage {
  to: string;
  subject: string;
  /** Every message has a plain-text part. */
  text: string;
  html: string;
}

export interface MailTransport {
  /** Delivers one message; answers where it went, for the log ("written to <file>", "sent by SMTP as <id>"). */
  deliver(message: MailMessage & { from: string }): Promise<string>;
  close(): void;
}

export interface MailLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

// Bounded waits: a dead or slow SMTP server ties up one delivery slot, for a while, and no more.
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };

export function smtpTransport(url: string): MailTransport {
  const transport = nodemailer.createTransport({ url, ...SMTP_TIMEOUTS });
  return {
    async deliver(message) {
      const info = (await transport.sendMail(message)) as { messageId?: string };
      return `sent by SMTP${info.messageId ? ` as ${info.messageId}` : ''}`;
    },
    close: () => transport.close(),
  };
}

/** Writes each message as an .eml file (RFC 5322) that any mail program opens. */
export function outboxTransport(dir: string): MailTransport {
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  // Names sort in the order the messages were sent, even within one millisecond.
  let sequence = 0;
  // Made once, and again if it is removed while the service runs (every mail used to make it:
  // file system calls that queue behind password hashes on libuv's pool).
  let made: Promise<unknown> | undefined;
  const makeDir = (again = false) => {
    if (again || !made) made = mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => ((made = undefined), Promise.reject(err)));
    return made;
  };
  return {
    async deliver(message) {
      const info = (await composer.sendMail(message)) as { message: Buffer };
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      sequence += 1;
      const file = join(dir, `${stamp}-${String(sequence).padStart(6, '0')}-${randomBytes(4).toString('hex')}.eml`);
      // The file holds a live link: readable by the service's user only.
      const write = () => writeFile(file, info.message, { mode: 0o600 });
      await makeDir();
      try {
        await write();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await makeDir(true);
        await write();
      }
      return `written to ${file}`;
    },
    close: () => composer.close(),
  };
}

/** SMTP when `smtpUrl` is set, else the outbox folder (API-ACCOUNT.md, Mail). */
export function mailTransport(settings: { smtpUrl?: string | null; outboxDir: string }): MailTransport {
  return settings.smtpUrl ? smtpTransport(settings.smtpUrl) : outboxTransport(settings.outboxDir);
}

export interface MailerOptions {
  from: string;
  /** Wait before the first retry; each further one waits 4 times longer. */
  retryBaseMs: number;
  /** Retries after the first attempt (at least 3). */
  retries?: number;
  /** Deliveries under way at once. */
  concurrency?: number;
  /** Messages waiting at most; past it a new one is dropped, with a warning (a flood must not eat memory). */
  maxQueued?: number;
}

interface Job {
  message: MailMessage;
  attempt: number;
}

export class Mailer {
  readonly #queue: Job[] = [];
  readonly #retryTimers = new Map<NodeJS.Timeout, Job>();
  #inFlight = 0;
  #delivered = 0;
  #closed = false;
  #idleWaiters: Array<() => void> = [];
  readonly #retries: number;
  readonly #concurrency: number;
  readonly #maxQueued: number;

  constructor(
    private readonly transport: MailTransport,
    private readonly options: MailerOptions,
    private readonly log: MailLog,
  ) {
    this.#retries = Math.max(3, options.retries ?? 3);
    this.#concurrency = options.concurrency ?? 4;
    this.#maxQueued = options.maxQueued ?? 10_000;
  }

  /** Queues a message; never throws and never waits for the delivery. */
  send(message: MailMessage): void {
    if (this.#closed) {
      this.log.warn({ subject: message.subject }, 'mail not sent: the service is shutting down');
      return;
    }
    if (this.#queue.length >= this.#maxQueued) {
      this.log.error({ subject: message.subject }, 'mail dropped: the mail queue is full');
      return;
    }
    this.#queue.push({ message, attempt: 0 });
    this.#pump();
  }

  /** Messages delivered so far (the command line tells whether its notice went out). */
  get delivered(): number {
    return this.#delivered;
  }

  /** Messages not yet delivered or given up on (queued, under way, or waiting to be retried). */
  get pending(): number {
    return this.#queue.length + this.#inFlight + this.#retryTimers.size;
  }

  /** Resolves once nothing is pending (tests; shutdown). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops taking mail, waits up to `graceMs` for what is under way, then gives up on the rest. */
  async close(graceMs = 5000): Promise<void> {
    this.#closed = true;
    // Retries waiting for their turn are tried once more now rather than lost silently.
    for (const [timer, job] of this.#retryTimers) {
      clearTimeout(timer);
      this.#retryTimers.delete(timer);
      this.#queue.push(job);
    }
    this.#pump();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    if (this.pending > 0) this.log.warn({ unsent: this.pending }, 'mail not sent: the service shut down first');
    this.transport.close();
  }

  #pump(): void {
    while (this.#inFlight < this.#concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#inFlight += 1;
      void this.#deliver(job).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
        this.#settle();
      });
    }
  }

  async #deliver(job: Job): Promise<void> {
    const { message } = job;
    try {
      const where = await this.transport.deliver({ ...message, from: this.options.from });
      this.#delivered += 1;
      // Names the file or message, never the link in it.
      this.log.info({ subject: message.subject }, `mail ${where}`);
    } catch (err) {
      job.attempt += 1;
      const reason = (err as Error).message;
      if (job.attempt > this.#retries || this.#closed) {
        this.log.error({ subject: message.subject, attempts: job.attempt, reason }, 'mail not sent: giving up');
        return;
      }
      const delay = this.options.retryBaseMs * 4 ** (job.attempt - 1);
      this.log.warn({ subject: message.subject, attempt: job.attempt, retry_in_ms: delay, reason }, 'mail not sent: will retry');
      const timer = setTimeout(() => {
        this.#retryTimers.delete(timer);
        this.#queue.push(job);
        this.#pump();
      }, delay);
      timer.unref();
      this.#retryTimers.set(timer, job);
    }
  }

  #settle(): void {
    if (this.pending > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Outgoing mail of this instance (tests wait on `idle()`). */
    mailer: Mailer;
  }
}
