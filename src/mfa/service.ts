import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import QRCode from 'qrcode';
import type { AuditLog } from '../audit/audit-log.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import { uniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import { hashSecret } from '../core/secrets.js';
import type { Clock } from '../core/clock.js';
import type { Reauthentication } from '../core/reauth.js';
import type { Revocation } from '../core/revocation.js';
import type { Caller } from '../core/caller.js';
import type { EventRecorder } from '../core/events.js';
import type { LoginThrottle } from '../throttling/login-throttle.js';
import { findUserById } from '../users/repository.js';
import { hashRecoveryCode, newRecoveryCodes, normaliseRecoveryCode } from './recovery-codes.js';
import {
  acceptTotpStep,
  allTotpSecrets,
  confirmPendingTotp,
  insertMfaToken,
  replacePendingTotp,
  replaceRecoveryCodes,
  swapTotpSecret,
  countMfaTokenFailure,
  deleteSecondFactors,
  findMfaToken,
  findTotpFactor,
  isTotpOn,
  MFA_TOKEN_MAX_FAILURES,
  unusedRecoveryCodes,
  useMfaToken,
  useRecoveryCode,
} from './repository.js';
import { matchTotpStep, newTotpSecret, otpauthUrl } from './totp.js';

/** How long the second step of a sign-in may take. */
export const MFA_TOKEN_TTL_S = 300;
/** The second factors a password sign-in may be completed with. */
export const MFA_FACTORS = ['totp', 'recovery_code'] as const;

const MFA_TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** What a TOTP secret is bound to when encrypted: its own user. */
const totpContext = (userId: string) => `totp:${userId}`;

export interface MfaStatus {
  totp: boolean;
  recovery_codes_left: number;
  passkeys: number;
}

export interface TotpSetup {
  secret: string;
  otpauth_url: string;
  qr_svg: string;
}

/** A second step under way: an mfa_token that checked out, not used yet. */
export interface MfaChallenge {
  tokenHash: string;
  userId: string;
  /** How the first step was made (amr): 'pwd', or 'fed' after another provider. */
  firstFactor: string;
}

class CodeRefused extends Error {}

/**
 * Second factors (API-ACCOUNT.md, Second factors): TOTP set-up, confirmation and removal with
 * recovery codes, and the second step of a password sign-in. The session itself is opened by
 * SessionsService, the one place where sessions begin.
 */
export interface MfaDeps {
  db: Kysely<Database>;
  reauth: Pick<Reauthentication, 'password' | 'ownerProof'>;
  throttle: Pick<LoginThrottle, 'begin' | 'failed' | 'released'>;
  audit: AuditLog;
  revocation: Revocation;
  cipher: DataCipher;
  /** The issuer an authenticator app shows next to the account. */
  issuer: string;
  /** How many passkeys the user has (passkeys/repository.ts), for the status. */
  passkeyCount(userId: string): Promise<number>;
  clock: Clock;
  events: EventRecorder;
}

export class MfaService {
  private readonly db: Kysely<Database>;
  private readonly reauth: Pick<Reauthentication, 'password' | 'ownerProof'>;
  private readonly throttle: Pick<LoginThrottle, 'begin' | 'failed' | 'released'>;
  private readonly audit: AuditLog;
  private readonly revocation: Revocation;
  private readonly cipher: DataCipher;
  private readonly issuer: string;
  private readonly passkeyCount: (userId: string) => Promise<number>;
  private readonly clock: Clock;
  private readonly events: EventRecorder;

  constructor(deps: MfaDeps) {
    this.clock = deps.clock;
    this.events = deps.events;
    ({ db: this.db, reauth: this.reauth, throttle: this.throttle, audit: this.audit, revocation: this.revocation, cipher: this.cipher, issuer: this.issuer } = deps);
    this.passkeyCount = deps.passkeyCount;
  }

  async status(caller: Caller): Promise<MfaStatus> {
    return {
      totp: await isTotpOn(this.db, caller.userId),
      recovery_codes_left: await unusedRecoveryCodes(this.db, caller.userId),
      passkeys: await this.passkeyCount(caller.userId),
    };
  }

  /** Starts (or starts again) a TOTP set-up: a new pending secret, shown once. */
  async beginTotp(caller: Caller, currentPassword: string | undefined): Promise<TotpSetup> {
    await this.reauth.ownerProof(caller, currentPassword, 'mfa_totp_enable');
    const user = await findUserById(this.db, caller.userId);
    if (!user) throw new AppError('wrong_current_password');
    if (await isTotpOn(this.db, caller.userId)) throw new AppError('mfa_already_enabled');

    const secret = newTotpSecret();
    const url = otpauthUrl(secret, this.issuer, user.username);
    const qrSvg = await QRCode.toString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    const sealed = this.cipher.encrypt(secret, totpContext(caller.userId));
    try {
      await replacePendingTotp(this.db, caller.userId, sealed);
    } catch (err) {
      // Confirmed (or set up) by a concurrent request meanwhile.
      if (uniqueViolation(err) !== undefined) throw new AppError('mfa_already_enabled');
      throw err;
    }
    await this.audit.record('mfa_setup_started', caller, { factor: 'totp' });
    return { secret, otpauth_url: url, qr_svg: qrSvg };
  }

  /**
   * Confirms the pending set-up with a first code: the factor is on, 10 recovery codes are made
   * (shown once, stored as hashes) and every other session of the user ends.
   */
  async confirmTotp(caller: Caller, code: string): Promise<{ recovery_codes: string[] }> {
    const pending = await findTotpFactor(this.db, caller.userId);
    if (!pending || pending.confirmed_at !== null) throw new AppError('mfa_not_pending');
    const attempt = await this.throttle.begin({ userId: caller.userId }, caller, 'mfa_totp_confirm');
    const step = matchTotpStep(this.cipher.decrypt(pending.secret_encrypted, totpContext(caller.userId)), code.trim(), this.clock.now());
    if (step === undefined) {
      await this.throttle.failed(attempt);
      await this.audit.record('mfa_challenge_failed', caller, { factor: 'totp', stage: 'confirm' });
      throw new AppError('invalid_mfa_code');
    }

    const codes = newRecoveryCodes();
    let revoked: string[];
    try {
      revoked = await this.db.transaction().execute(async (trx) => {
        // Only the very set-up whose secret was checked (not one started again meanwhile).
        if (!(await confirmPendingTotp(trx, caller.userId, pending.secret_encrypted, step, new Date(this.clock.now())))) throw new AppError('mfa_not_pending');
        await replaceRecoveryCodes(trx, caller.userId, codes.map((c) => hashRecoveryCode(normaliseRecoveryCode(c)!)));
        await this.events.record(trx, { type: 'mfa.enabled', userId: caller.userId, data: { factor: 'totp' } });
        return this.revocation.end(trx, { userId: caller.userId, exceptSessionId: caller.sessionId }, 'mfa_enabled');
      });
    } catch (err) {
      await this.throttle.released(attempt);
      throw err;
    }
    this.revocation.forget(revoked);
    await this.throttle.released(attempt);
    await this.audit.record('mfa_enabled', caller, { factor: 'totp', revoked_sessions: revoked.length });
    return { recovery_codes: codes };
  }

  /** Turns TOTP off: the secret, the recovery codes and any sign-in half-way are deleted. */
  async disableTotp(caller: Caller, currentPassword: string | undefined): Promise<void> {
    await this.reauth.ownerProof(caller, currentPassword, 'mfa_totp_disable');
    if (!(await isTotpOn(this.db, caller.userId))) throw new AppError('mfa_not_enabled');
    const { totp } = await MfaService.reset(this.db, caller.userId, this.events);
    if (!totp) throw new AppError('mfa_not_enabled'); // turned off by a concurrent request
    await this.audit.record('mfa_disabled', caller, { factor: 'totp' });
  }

  /** The mfa_token of a sign-in whose password checked out: single-use, 5 minutes, bound to the user and the address. */
  async issueChallenge(userId: string, ip: string | null, firstFactor: 'pwd' | 'fed' = 'pwd'): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await insertMfaToken(this.db, { tokenHash: hashSecret(token), userId, ip, expiresAt: new Date(this.clock.now() + MFA_TOKEN_TTL_S * 1000), firstFactor });
    return token;
  }

  /** Checks an mfa_token before any code: unknown, used, expired, dead or from another address → 401 invalid_mfa_token. */
  async openChallenge(token: string, ip: string | null): Promise<MfaChallenge> {
    if (!MFA_TOKEN_SHAPE.test(token)) throw new AppError('invalid_mfa_token');
    const tokenHash = hashSecret(token);
    const row = await findMfaToken(this.db, tokenHash);
    if (!row || row.used_at !== null || row.expires_at.getTime() <= this.clock.now() || row.failures >= MFA_TOKEN_MAX_FAILURES || row.ip !== ip) {
      throw new AppError('invalid_mfa_token');
    }
    return { tokenHash, userId: String(row.user_id), firstFactor: row.first_factor };
  }

  /** Ends a challenge that can no longer succeed (its user was disabled meanwhile). */
  async closeChallenge(challenge: MfaChallenge): Promise<void> {
    await useMfaToken(this.db, challenge.tokenHash, this.clock.now());
  }

  /**
   * Redeems the challenge with a TOTP code or a recovery code. On success the mfa_token and the
   * code are used up together (one transaction); a wrong or replayed code counts against the
   * token instead. Answers the factor used, or undefined for a wrong code.
   */
  async redeem(challenge: MfaChallenge, code: string, mayComplete: () => void = () => {}): Promise<{ factor: 'totp' | 'recovery_code'; recoveryCodesLeft?: number } | undefined> {
    const { userId, tokenHash } = challenge;
    const typed = code.trim();
    let consume: ((trx: Kysely<Database>) => Promise<boolean>) | undefined;
    let factor: 'totp' | 'recovery_code' = 'totp';
    if (/^[0-9]{6}$/.test(typed)) {
      const row = await findTotpFactor(this.db, userId);
      const step = row && row.confirmed_at !== null ? matchTotpStep(this.cipher.decrypt(row.secret_encrypted, totpContext(userId)), typed, this.clock.now()) : undefined;
      if (step !== undefined) consume = (trx) => acceptTotpStep(trx, userId, step);
    } else {
      factor = 'recovery_code';
      const normalised = normaliseRecoveryCode(typed);
      if (normalised !== undefined) consume = (trx) => useRecoveryCode(trx, userId, hashRecoveryCode(normalised));
    }

    if (consume) {
      try {
        await this.db.transaction().execute(async (trx) => {
          if (!(await useMfaToken(trx, tokenHash, this.clock.now()))) throw new AppError('invalid_mfa_token');
          if (!(await consume(trx))) throw new CodeRefused();
          // The code checked out; a sign-in refused now (its error goes to the caller) spends
          // neither the code nor the mfa_token.
          mayComplete();
        });
        if (factor === 'totp') return { factor };
        return { factor, recoveryCodesLeft: await unusedRecoveryCodes(this.db, userId) };
      } catch (err) {
        if (!(err instanceof CodeRefused)) throw err;
      }
    }
    await countMfaTokenFailure(this.db, tokenHash);
    return undefined;
  }

  /** Encrypts every TOTP secret with the key that encrypts now (compare-and-swap per row). Answers how many were rewritten. */
  static async reencryptSecrets(db: Kysely<Database>, cipher: DataCipher): Promise<number> {
    let rewritten = 0;
    for (const row of await allTotpSecrets(db)) {
      if (cipher.isCurrent(row.secret_encrypted)) continue;
      const context = totpContext(String(row.user_id));
      if (await swapTotpSecret(db, row.user_id, row.secret_encrypted, cipher.encrypt(cipher.decrypt(row.secret_encrypted, context), context))) rewritten += 1;
    }
    return rewritten;
  }

  /** Support: removes every second factor of a user (they sign in with the password alone again). */
  static async reset(db: Kysely<Database>, userId: string, events?: EventRecorder): Promise<{ totp: boolean }> {
    return db.transaction().execute(async (trx) => {
      const removed = await deleteSecondFactors(trx, userId);
      if (removed.totp) await events?.record(trx, { type: 'mfa.disabled', userId, data: { factor: 'totp' } });
      return removed;
    });
  }
}
