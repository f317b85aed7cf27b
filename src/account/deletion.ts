import { createHmac } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { CredentialsService } from '../credentials/service.js';
import type { Database } from '../db/schema.js';
import type { SessionRevocation } from '../sessions/revocation.js';
import type { Caller } from '../sessions/service.js';
import type { LoginThrottle } from '../throttling/login-throttle.js';

/**
 * Self-service deletion (API-ACCOUNT.md; GDPR art. 17). The user's rows go; the audit log keeps
 * its events with user_id replaced by a pseudonym: HMAC-SHA256 of the user id under a server
 * key (service_secrets 'audit_pseudonym'). Without the key the pseudonym says nothing; an
 * operator holding it can still tell which events belonged to one former account id, which is
 * what an investigation needs and all it gets.
 */
export function pseudonymFor(key: Buffer, userId: string): string {
  return `deleted:${createHmac('sha256', key).update(`user:${userId}`).digest('base64url').slice(0, 32)}`;
}

export class AccountDeletion {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly credentials: CredentialsService,
    private readonly revocation: SessionRevocation,
    private readonly invalidation: Invalidation,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditLog,
    private readonly pseudonymKey: Buffer,
  ) {}

  async deleteAccount(caller: Caller, currentPassword: string): Promise<void> {
    const { userId } = caller;
    // A wrong password is 403 invalid_credentials, counted as a failed login; nothing is deleted.
    await this.credentials.reauthenticate(caller, currentPassword, 'account_deletion');
    // Every session ends at once, here and (through the notification) on every other instance.
    const ended = await this.revocation.endNow(this.db, { userId }, 'account_deleted');
    const pseudonym = pseudonymFor(this.pseudonymKey, userId);
    const late = await this.db.transaction().execute(async (trx) => {
      // A session opened meanwhile ends too, and is announced with the deletion.
      const ids = await this.revocation.end(trx, { userId }, 'account_deleted');
      await trx.updateTable('audit_events').set({ user_id: null, subject_pseudonym: pseudonym }).where('user_id', '=', userId).execute();
      // The tables of other features (second factors, passkeys) go by ON DELETE CASCADE.
      await trx.deleteFrom('account_tokens').where('user_id', '=', userId).execute();
      await trx.deleteFrom('user_sessions').where('user_id', '=', userId).execute();
      await trx.deleteFrom('user_credentials').where('user_id', '=', userId).execute();
      await trx.deleteFrom('users').where('user_id', '=', userId).execute();
      await this.invalidation.publish(trx, 'user', [userId]);
      return ids;
    });
    this.revocation.forget(late);
    this.invalidation.forget('user', [userId]);
    await this.throttle.clearAccount(userId);
    await this.audit.record('account_deleted', { userId: null, pseudonym, sessionId: caller.sessionId, ip: caller.ip, userAgent: caller.userAgent }, { sessions_ended: ended.length + late.length });
  }
}
