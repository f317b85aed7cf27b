import type { Kysely } from 'kysely';
import type { AuditEventType, AuditRow } from '../audit/audit-log.js';
import type { Database } from '../db/schema.js';
import type { MailLog, Mailer } from '../mail/mailer.js';
import { securityNoticeMessage } from '../mail/templates.js';
import type { BackgroundJobs } from './background.js';
import { systemClock, type Clock } from '../core/clock.js';

/**
 * Mails the owner of an account when something that guards it changed (NIST SP 800-63B 4.6,
 * ASVS V6.3.7): a password changed or reset, the authenticator app turned on or off, a recovery
 * code used, a passkey added or removed, a session ended because an old refresh token came back.
 * Each notice says what happened, when and from which address, and what to do if it was not them.
 *
 * Driven by the security events: every way that records one of these events sends its notice,
 * once the event is stored and off the request path (a mail that fails never fails the change).
 * Text a client chose (user agent, passkey name) is left out: it would let a stranger write into
 * a mail that comes from us. At most MAX_PER_HOUR_OF_KIND notices of one kind, and MAX_PER_HOUR
 * in all, go to one account an hour (counted in the stored events, so across instances): whoever
 * holds an account whose address is someone else's cannot turn these into a stream of mail to
 * that address, and using up one kind of change does not make another go untold (it would take
 * three kinds used up to reach the cap of all).
 */
interface Notice {
  subject: string;
  what: (details: Record<string, unknown>) => string;
  /** Only when the event's details say something changed. */
  when?: (details: Record<string, unknown>) => boolean;
}

const NOTICES: Partial<Record<AuditEventType, Notice>> = {
  password_changed: { subject: 'Your password was changed', what: () => 'The password of your account was changed.' },
  password_reset_completed: {
    subject: 'Your password was reset',
    what: () => 'The password of your account was reset with a link sent to this address, and every session was signed out.',
  },
  mfa_enabled: { subject: 'Two-step sign-in was turned on', what: () => 'Two-step sign-in with an authenticator app was turned on for your account.' },
  mfa_disabled: { subject: 'Two-step sign-in was turned off', what: () => 'Two-step sign-in with an authenticator app was turned off for your account.' },
  recovery_code_used: {
    subject: 'A recovery code was used',
    what: (d) => `A recovery code was used to sign in to your account; ${Number(d.left ?? 0)} of your recovery codes are left.`,
  },
  passkey_added: { subject: 'A passkey was added', what: () => 'A passkey was added to your account: it can now sign in without the password.' },
  passkey_removed: { subject: 'A passkey was removed', what: () => 'A passkey was removed from your account.' },
  identity_linked: { subject: 'An account was linked', what: (d) => `Your ${String(d.provider)} account was linked: it can now sign in to your account.` },
  identity_unlinked: { subject: 'An account was unlinked', what: (d) => `Your ${String(d.provider)} account was unlinked: it no longer signs in to your account.` },
  mfa_reset_by_admin: {
    subject: 'Your second factors were removed',
    what: () => 'At a request to support, the authenticator app and the recovery codes of your account were removed: it signs in with the password alone until you set them up again.',
    when: (d) => d.had_totp === true,
  },
  refresh_reuse: {
    subject: 'A session of your account was ended',
    what: () => 'A session of your account was signed out because one of its old sign-in tokens was used again, which can mean it was copied.',
  },
};

const MAX_PER_HOUR_OF_KIND = 5;
const MAX_PER_HOUR = 15;
const NOTICE_EVENTS = Object.keys(NOTICES);

export class SecurityNotices {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly mailer: Mailer,
    private readonly jobs: BackgroundJobs,
    private readonly log: MailLog,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Called with every security event once it is stored (AuditLog.onRecorded). */
  readonly recorded = (row: AuditRow): void => {
    const notice = NOTICES[row.event as AuditEventType];
    const userId = row.user_id;
    if (!notice || userId === null || userId === undefined) return;
    const details = row.details ? (JSON.parse(row.details) as Record<string, unknown>) : {};
    if (notice.when && !notice.when(details)) return;
    const at = new Date(this.clock.now());
    this.jobs.run(async () => {
      // The address, and the events of the last hour that send notices: of this kind, and of all
      // kinds (this one among them: it was stored first).
      const since = new Date(at.getTime() - 3_600_000);
      const user = await this.db
        .selectFrom('users')
        .select((eb) => {
          const lastHour = (events: string[]) =>
            eb
              .selectFrom('audit_events')
              .select((c) => c.fn.countAll<string>().as('n'))
              .where('audit_events.user_id', '=', String(userId))
              .where('audit_events.event', 'in', events)
              .where('audit_events.occurred_at', '>', since);
          return ['email', lastHour([row.event]).as('of_kind'), lastHour(NOTICE_EVENTS).as('of_all')];
        })
        .where('users.user_id', '=', String(userId))
        .executeTakeFirst();
      if (!user) return; // deleted meanwhile
      if (Number(user.of_kind) > MAX_PER_HOUR_OF_KIND || Number(user.of_all) > MAX_PER_HOUR) {
        this.log.warn({ event: row.event }, 'security notice not sent: this account had its hourly number');
        return;
      }
      this.mailer.send(securityNoticeMessage(user.email, notice.subject, notice.what(details), { at, ip: row.ip ?? null }));
    });
  };
}
