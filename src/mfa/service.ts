import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import QRCode from 'qrcode';
import type { AuditLog } from '../audit/audit-log.js';
import type { PasswordHasher } from '../credentials/hashing.js';
import { findCurrentCredential } from '../credentials/repository.js';
import type { DataCipher } from '../crypto/data-encryption.js';
import { uniqueViolation } from '../db/errors.js';
import { countPasskeys } from '../passkeys/repository.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import { hashSecret } from '../sessions/refresh-tokens.js';
import type { SessionRevocation } from '../sessions/revocation.js';
import type { Caller } from '../sessions/service.js';
import type { Attempt, LoginThrottle } from '../throttling/login-throttle.js';
import { findUserById } from '../users/repository.js';
import { hashRecoveryCode, newRecoveryCodes, normaliseRecoveryCode } from './recovery-codes.js';
import {
  acceptTotpStep,
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
}

class CodeRefused extends Error {}

/**
 * Second factors (API-ACCOUNT.md, Second factors): TOTP set-up, confirmation and removal with
 * recovery codes, and the second step of a password sign-in. The session itself is opened by
 * SessionsService, the one place where sessions begin.
 */
export class MfaService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditLog,
    private readonly revocation: SessionRevocation,
    private readonly cipher: DataCipher,
    /** The issuer an authenticator app shows next to the account. */
    private readonly issuer: string,
  ) {}

  async status(caller: Caller): Promise<MfaStatus> {
    return {
      totp: await isTotpOn(this.db, caller.userId),
      recovery_codes_left: await unusedRecoveryCodes(this.db, caller.userId),
      passkeys: await countPasskeys(this.db, caller.userId),
    };
  }

  /** Counts an attempt on the account's login throttle, or throws 429 (audited). */
  async #begin(caller: Caller, what: string): Promise<Attempt> {
    try {
      return await this.throttle.begin({ userId: caller.userId }, caller.ip);
    } catch (err) {
      if (err instanceof AppError && err.code === 'too_many_requests') await this.audit.record('throttled', caller, { what });
      throw err;
    }
  }

  // ASVS 5.0 V6.2.3-style re-authentication: a wrong current password counts as a failed login (V6.3.1).
  async #reauthenticate(caller: Caller, password: string, what: string): Promise<void> {
    const attempt = await this.#begin(caller, what);
    const credential = await findCurrentCredential(this.db, caller.userId);
    if (!credential || !(await this.hasher.verify(credential.hashed_password, password))) {
      await this.throttle.failed(attempt);
      await this.audit.record('reauthentication_failed', caller, { what });
      throw new AppError('wrong_current_password');
    }
    await this.throttle.released(attempt);
  }

  /** Starts (or starts again) a TOTP set-up: a new pending secret, shown once. */
  async beginTotp(caller: Caller, currentPassword: string): Promise<TotpSetup> {
    await this.#reauthenticate(caller, currentPassword, 'mfa_totp_enable');
    const user = await findUserById(this.db, caller.userId);
    if (!user) throw new AppError('wrong_current_password');
    if (await isTotpOn(this.db, caller.userId)) throw new AppError('mfa_already_enabled');

    const secret = newTotpSecret();
    const url = otpauthUrl(secret, this.issuer, user.username);
    const qrSvg = await QRCode.toString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    const sealed = this.cipher.encrypt(secret, totpContext(caller.userId));
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('user_totp_factors').where('user_id', '=', caller.userId).where('confirmed_at', 'is', null).execute();
        await trx.insertInto('user_totp_factors').values({ user_id: caller.userId, secret_encrypted: sealed }).execute();
      });
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
    const attempt = await this.#begin(caller, 'mfa_totp_confirm');
    const step = matchTotpStep(this.cipher.decrypt(pending.secret_encrypted, totpContext(caller.userId)), code.trim());
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
        const confirmed = await trx
          .updateTable('user_totp_factors')
          .set({ confirmed_at: new Date(), last_used_step: step })
          .where('user_id', '=', caller.userId)
          .where('confirmed_at', 'is', null)
          .where('secret_encrypted', '=', pending.secret_encrypted)
          .executeTakeFirst();
        if (confirmed.numUpdatedRows !== 1n) throw new AppError('mfa_not_pending');
        await trx.deleteFrom('user_recovery_codes').where('user_id', '=', caller.userId).execute();
        await trx
          .insertInto('user_recovery_codes')
          .values(codes.map((c) => ({ user_id: caller.userId, code_hash: hashRecoveryCode(normaliseRecoveryCode(c)!) })))
          .execute();
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
  async disableTotp(caller: Caller, currentPassword: string): Promise<void> {
    await this.#reauthenticate(caller, currentPassword, 'mfa_totp_disable');
    if (!(await isTotpOn(this.db, caller.userId))) throw new AppError('mfa_not_enabled');
    const { totp } = await this.db.transaction().execute((trx) => deleteSecondFactors(trx, caller.userId));
    if (!totp) throw new AppError('mfa_not_enabled'); // turned off by a concurrent request
    await this.audit.record('mfa_disabled', caller, { factor: 'totp' });
  }

  /** The mfa_token of a sign-in whose password checked out: single-use, 5 minutes, bound to the user and the address. */
  async issueChallenge(userId: string, ip: string | null): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await this.db
      .insertInto('mfa_tokens')
      .values({ token_hash: hashSecret(token), user_id: userId, ip, expires_at: new Date(Date.now() + MFA_TOKEN_TTL_S * 1000) })
      .execute();
    return token;
  }

  /** Checks an mfa_token before any code: unknown, used, expired, dead or from another address → 401 invalid_mfa_token. */
  async openChallenge(token: string, ip: string | null): Promise<MfaChallenge> {
    if (!MFA_TOKEN_SHAPE.test(token)) throw new AppError('invalid_mfa_token');
    const tokenHash = hashSecret(token);
    const row = await findMfaToken(this.db, tokenHash);
    if (!row || row.used_at !== null || row.expires_at.getTime() <= Date.now() || row.failures >= MFA_TOKEN_MAX_FAILURES || row.ip !== ip) {
      throw new AppError('invalid_mfa_token');
    }
    return { tokenHash, userId: String(row.user_id) };
  }

  /** Ends a challenge that can no longer succeed (its user was disabled meanwhile). */
  async closeChallenge(challenge: MfaChallenge): Promise<void> {
    await useMfaToken(this.db, challenge.tokenHash);
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
      const step = row && row.confirmed_at !== null ? matchTotpStep(this.cipher.decrypt(row.secret_encrypted, totpContext(userId)), typed) : undefined;
      if (step !== undefined) consume = (trx) => acceptTotpStep(trx, userId, step);
    } else {
      factor = 'recovery_code';
      const normalised = normaliseRecoveryCode(typed);
      if (normalised !== undefined) consume = (trx) => useRecoveryCode(trx, userId, hashRecoveryCode(normalised));
    }

    if (consume) {
      try {
        await this.db.transaction().execute(async (trx) => {
          if (!(await useMfaToken(trx, tokenHash))) throw new AppError('invalid_mfa_token');
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
    const rows = await db.selectFrom('user_totp_factors').select(['user_id', 'secret_encrypted']).execute();
    let rewritten = 0;
    for (const row of rows) {
      if (cipher.isCurrent(row.secret_encrypted)) continue;
      const context = totpContext(String(row.user_id));
      const result = await db
        .updateTable('user_totp_factors')
        .set({ secret_encrypted: cipher.encrypt(cipher.decrypt(row.secret_encrypted, context), context) })
        .where('user_id', '=', row.user_id)
        .where('secret_encrypted', '=', row.secret_encrypted)
        .executeTakeFirst();
      rewritten += Number(result.numUpdatedRows);
    }
    return rewritten;
  }

  /** Support: removes every second factor of a user (they sign in with the password alone again). */
  static async reset(db: Kysely<Database>, userId: string): Promise<{ totp: boolean }> {
    return db.transaction().execute((trx) => deleteSecondFactors(trx, userId));
  }
}
