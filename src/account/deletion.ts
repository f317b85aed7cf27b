import type { Kysely, Transaction } from 'kysely';
import type { EventRecorder } from '../core/events.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { AccountErasure } from '../core/erasure.js';
import { pseudonymFor } from '../audit/audit-log.js';
import type { Reauthentication } from '../core/reauth.js';
import { deleteUser } from '../users/repository.js';
import type { Revocation } from '../core/revocation.js';
import type { Database } from '../db/schema.js';
import type { Caller } from '../core/caller.js';
import type { LoginThrottle } from '../throttling/login-throttle.js';

export { pseudonymFor };

export interface AccountDeletionDeps {
  db: Kysely<Database>;
  /** Each feature's eraser of its own rows (core/erasure.ts). */
  erasure: AccountErasure;
  reauth: Pick<Reauthentication, 'password' | 'ownerProof'>;
  revocation: Revocation;
  invalidation: Invalidation;
  throttle: Pick<LoginThrottle, 'clearAccount'>;
  audit: AuditLog;
  events: EventRecorder;
  pseudonymKey: Buffer;
  /**
   * Runs first in the deleting transaction; what it throws leaves everything as it was (the
   * last-admin rule of API-ADMIN.md, src/admin/).
   */
  beforeDelete?: (trx: Transaction<Database>, userId: string) => Promise<void>;
}

export class AccountDeletion {
  private readonly db: Kysely<Database>;
  private readonly reauth: Pick<Reauthentication, 'password' | 'ownerProof'>;
  private readonly revocation: Revocation;
  private readonly invalidation: Invalidation;
  private readonly throttle: Pick<LoginThrottle, 'clearAccount'>;
  private readonly audit: AuditLog;
  private readonly pseudonymKey: Buffer;
  private readonly erasure: AccountErasure;
  private readonly beforeDelete: AccountDeletionDeps['beforeDelete'];
  private readonly events: EventRecorder;

  constructor(deps: AccountDeletionDeps) {
    this.erasure = deps.erasure;
    this.beforeDelete = deps.beforeDelete;
    this.events = deps.events;
    ({ db: this.db, reauth: this.reauth, revocation: this.revocation, invalidation: this.invalidation, throttle: this.throttle, audit: this.audit, pseudonymKey: this.pseudonymKey } = deps);
  }

  async deleteAccount(caller: Caller, currentPassword: string | undefined): Promise<void> {
    // A wrong password is 403 invalid_credentials, counted as a failed login; nothing is deleted.
    await this.reauth.ownerProof(caller, currentPassword, 'account_deletion');
    await this.deleteUser(caller.userId, { sessionId: caller.sessionId, ip: caller.ip, userAgent: caller.userAgent });
  }

  /** Deletes the user, as self-service deletion does; also an administrator's deletion (API-ADMIN.md: `actorId`). */
  async deleteUser(userId: string, context: { sessionId?: string | null; ip: string | null; userAgent: string | null; actorId?: string | null }): Promise<void> {
    // Every session ends at once, here and (through the notification) on every other instance;
    // with a rule that may refuse the deletion, in the deleting transaction, once it has passed.
    const ended = this.beforeDelete ? [] : await this.revocation.endNow(this.db, { userId }, 'account_deleted');
    const pseudonym = pseudonymFor(this.pseudonymKey, userId);
    const late = await this.db.transaction().execute(async (trx) => {
      await this.beforeDelete?.(trx, userId);
      // A session opened meanwhile ends too, and is announced with the deletion.
      const ids = await this.revocation.end(trx, { userId }, 'account_deleted');
      // Each feature erases its own rows (the audit log keeps the events under the pseudonym), then the user goes.
      await this.erasure.eraseAll(trx, userId);
      await deleteUser(trx, userId);
      await this.events.record(trx, { type: 'user.deleted', userId });
      await this.invalidation.publish(trx, 'user', [userId]);
      return ids;
    });
    this.revocation.forget(late);
    this.invalidation.forget('user', [userId]);
    await this.throttle.clearAccount(userId);
    await this.audit.record('account_deleted', { userId: null, pseudonym, sessionId: context.sessionId ?? null, ip: context.ip, userAgent: context.userAgent, actorId: context.actorId ?? null }, { sessions_ended: ended.length + late.length });
  }
}
