import { systemClock, type Clock } from '../core/clock.js';
import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { InvalidatedCache } from '../cache/invalidated-cache.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { Caller, ClientInfo } from '../core/caller.js';
import type { EventRecorder } from '../core/events.js';
import type { Reauthentication } from '../core/reauth.js';
import { checkPasswordPolicy } from '../credentials/policy.js';
import type { PasswordHasher } from '../credentials/hashing.js';
import { uniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed, type FieldError, type ProblemName } from '../errors.js';
import { findUserById, insertUserWithPassword, lockUserEmail, lookupKey, takenFields, toUser, updateUser, type UserRecord } from './repository.js';
import { dobProblem, nameProblem, newEmailProblem } from './rules.js';
import type { RegisterBody, UpdateProfileBody, User } from './schemas.js';

const FIELD_RULES = { name: nameProblem, dob: dobProblem, email: newEmailProblem } as const;

/**
 * Throws 400 validation_failed naming each given field that breaks its rule (rules.ts). The
 * request schemas run the same rules with the rest of the body; this keeps the service whole.
 */
/** The field rules again, on the service's clock (the request schema ran them on the system's). */
function assertFieldRules(input: Partial<Record<keyof typeof FIELD_RULES, string>>, now: Date): void {
  const errors: FieldError[] = [];
  for (const field of Object.keys(FIELD_RULES) as Array<keyof typeof FIELD_RULES>) {
    const value = input[field];
    const message = value === undefined ? undefined : FIELD_RULES[field](value, now);
    if (message !== undefined) errors.push({ field, message });
  }
  if (errors.length) throw validationFailed(errors);
}

/** What a register or a profile update answers when a unique field is in use (conflict below). */
export const TAKEN = ['username_taken', 'email_taken'] as const satisfies readonly ProblemName[];

export function conflict(taken: Array<'username' | 'email'>): AppError {
  const first = taken[0] ?? 'username';
  return new AppError(first === 'username' ? 'username_taken' : 'email_taken', {
    errors: taken.map((field) => ({ field, message: field === 'username' ? 'is already taken' : 'is already in use' })),
  });
}

/** A write that lost a race on a unique key answers like the pre-check would have. */
export function conflictFromConstraint(err: unknown): AppError | undefined {
  const constraint = uniqueViolation(err);
  if (constraint === undefined) return undefined;
  if (constraint.includes('email')) return conflict(['email']);
  if (constraint.includes('username')) return conflict(['username']);
  return undefined;
}

/**
 * What happens after a registration or an email change (the verification mail, the notice to the
 * old address). Never throws: the change has been made whatever becomes of its mail.
 */
export interface EmailEvents {
  registered(user: UserRecord, client: ClientInfo): Promise<void>;
  emailChanged(user: UserRecord, oldEmail: string, caller: Caller): Promise<void>;
  /** Throws 429 when the user may not change the email now (its mails are capped). */
  assertMayChangeEmail(caller: Caller, newEmail: string): Promise<void>;
}

export interface UsersDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  audit: AuditLog;
  invalidation: Invalidation;
  userCache: InvalidatedCache<User>;
  config: { passwordMinLength: number };
  clock?: Clock;
  reauth: Pick<Reauthentication, 'password' | 'recentSignIn'>;
  /** The mails of a registration or an email change (account/email-verification.ts). */
  emailEvents?: EmailEvents;
  events: EventRecorder;
}

export class UsersService {
  private readonly db: Kysely<Database>;
  private readonly clock: Clock;
  private readonly hasher: PasswordHasher;
  private readonly events: EventRecorder;
  private readonly audit: AuditLog;
  private readonly invalidation: Invalidation;
  private readonly cache: InvalidatedCache<User>;
  private readonly passwordMinLength: number;
  private readonly emailEvents: EmailEvents | undefined;
  private readonly reauth: Pick<Reauthentication, 'password' | 'recentSignIn'>;

  constructor(deps: UsersDeps) {
    this.reauth = deps.reauth;
    ({ db: this.db, hasher: this.hasher, audit: this.audit, invalidation: this.invalidation, userCache: this.cache, emailEvents: this.emailEvents, events: this.events } = deps);
    this.passwordMinLength = deps.config.passwordMinLength;
    this.clock = deps.clock ?? systemClock;
  }

  /** create_new_user: the profile and its first, current credential, in one transaction. */
  async register(input: RegisterBody, client: ClientInfo): Promise<User> {
    assertFieldRules(input, new Date(this.clock.now()));
    const name = input.name.trim();
    // The password rules are judged once every other field is valid: 400 weak_password, before any hashing.
    checkPasswordPolicy(input.password, this.passwordMinLength, { username: input.username, email: input.email });

    const taken = await takenFields(this.db, input);
    if (taken.length) throw conflict(taken);

    // Hash before the transaction: a transaction held across a hash stalls PGlite's one connection.
    const hashedPassword = await this.hasher.hash(input.password);
    try {
      const values = { username: input.username, name, dob: input.dob, email: input.email };
      // user.created (API-INTEGRATION.md) with the user, in the same statement.
      const created = this.events.withNewRow({ type: 'user.created', userId: null, data: { username: values.username, name, email: values.email, email_verified: false } }, { userId: 'user_id' });
      const row = await insertUserWithPassword(this.db, values, hashedPassword, [created]);
      await this.audit.record('user_registered', { userId: row.user_id, ...client });
      await this.emailEvents?.registered(row, client);
      return toUser(row);
    } catch (err) {
      throw conflictFromConstraint(err) ?? err;
    }
  }

  /** The caller's profile; from this instance's cache when it has it (kept right like sessions). */
  async profile(userId: string): Promise<User> {
    const cached = this.cache.get(userId);
    if (cached) return cached;
    const epoch = this.cache.epoch;
    const row = await findUserById(this.db, userId);
    if (!row) throw new AppError('not_found');
    const user = toUser(row);
    this.cache.set(userId, user, epoch);
    return user;
  }

  /**
   * update_user_details: any non-empty subset of the profile fields; updated_at moves. A new
   * email (a sign-in name and the recovery address) also needs proof that the owner is there:
   * `current_password`, or a session opened in the last 15 minutes (API.md; ASVS 5.0 V7.5.1).
   */
  async updateProfile(caller: Caller, input: UpdateProfileBody): Promise<User> {
    const { userId } = caller;
    assertFieldRules(input, new Date(this.clock.now()));
    const { current_password: currentPassword, ...fields } = input;
    if (Object.keys(fields).length === 0) throw validationFailed([{ field: '(body)', message: 'give at least one of username, name, dob and email' }]);
    // A password given is checked whatever changes: a wrong one is 403, counted as a failed login.
    if (currentPassword !== undefined) await this.reauth.password(caller, currentPassword, 'email_change');
    const changes: { username?: string; name?: string; dob?: string; email?: string; email_verified?: boolean } = {};
    if (input.username !== undefined) changes.username = input.username;
    if (input.email !== undefined) changes.email = input.email;
    if (input.name !== undefined) changes.name = input.name.trim();
    if (input.dob !== undefined) changes.dob = input.dob;
    if (changes.email !== undefined && this.emailEvents) {
      // From the row, not the profile cache (another instance may have changed it), and checked
      // unless the row shows the same address: a failed read fails the request, never skips this.
      const current = await findUserById(this.db, userId);
      if (!current || lookupKey(current.email) !== lookupKey(changes.email)) {
        // Through the one re-authentication service: a stolen access token alone cannot redirect the reset links.
        if (currentPassword === undefined) await this.reauth.recentSignIn(caller);
        await this.emailEvents.assertMayChangeEmail(caller, changes.email);
      }
    }

    const taken = await takenFields(this.db, changes, userId);
    if (taken.length) throw conflict(taken);
    try {
      const { row, oldEmail } = await this.db.transaction().execute(async (trx) => {
        const before = await lockUserEmail(trx, userId);
        // A new address is unverified until its own link is followed; a change of case only is the same address.
        const emailChanged = before !== undefined && changes.email !== undefined && lookupKey(changes.email) !== lookupKey(before.email);
        const updated = await updateUser(trx, userId, emailChanged ? { ...changes, email_verified: false } : changes);
        await this.invalidation.publish(trx, 'user', [userId]);
        if (updated) await this.events.record(trx, { type: 'user.updated', userId, data: { fields: Object.keys(changes).sort(), ...changes, ...(emailChanged ? { email_verified: false } : {}) } });
        return { row: updated, oldEmail: emailChanged ? before.email : undefined };
      });
      this.invalidation.forget('user', [userId]);
      if (!row) throw new AppError('not_found');
      await this.audit.record('profile_updated', caller, { fields: Object.keys(changes).sort().join(',') });
      if (oldEmail !== undefined) await this.emailEvents?.emailChanged(row, oldEmail, caller);
      return toUser(row);
    } catch (err) {
      throw conflictFromConstraint(err) ?? err;
    }
  }
}
