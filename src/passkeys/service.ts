import { createHmac } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Kysely } from 'kysely';
import type { EventRecorder } from '../core/events.js';
import type { AuditLog } from '../audit/audit-log.js';
import { uniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed } from '../errors.js';
import type { Caller, ClientInfo } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import type { Reauthentication } from '../core/reauth.js';
import type { SessionsService } from '../sessions/service.js';
import type { TokenPair } from '../sessions/schemas.js';
import { findUserById } from '../users/repository.js';
import {
  consumeChallenge,
  credentialIdsOf,
  deletePasskey,
  findPasskeyByCredentialId,
  insertChallenge,
  insertPasskey,
  listPasskeys,
  recordPasskeyUse,
  type ChallengePurpose,
} from './repository.js';
import type { Passkey } from './schemas.js';

export interface PasskeySettings {
  /** WEBAUTHN_RP_ID. */
  rpId: string;
  /** PUBLIC_URL: the only origin a response may come from. */
  origin: string;
  /** Shown by the authenticator next to the account. */
  rpName: string;
}

/** Challenges live this long (API-ACCOUNT.md), and the browser is told to wait as long. */
export const CHALLENGE_TTL_MS = 5 * 60_000;
/** RFC 8176: a hardware-bound key (swk) with user verification, which is multi-factor. */
export const PASSKEY_AMR = ['swk', 'mfa'] as const;

const NAME_MAX = 64;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

const invalidPasskey = (cause?: unknown) => new AppError('invalid_passkey', { cause });
// The same code as a wrong password (API-ACCOUNT.md), with a detail that speaks of what was sent.
const invalidCredentials = () => new AppError('invalid_credentials', { detail: 'The passkey could not be verified.' });

/** The `challenge` inside a response's clientDataJSON, or undefined when there is none to read. */
function challengeOf(clientDataJSON: string): string | undefined {
  try {
    const data: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
    const challenge = (data as { challenge?: unknown } | null)?.challenge;
    return typeof challenge === 'string' && challenge.length > 0 && challenge.length <= 128 ? challenge : undefined;
  } catch {
    return undefined;
  }
}

function toPasskey(row: { passkey_id: string; name: string; created_at: Date; last_used_at: Date | null }): Passkey {
  return {
    id: String(row.passkey_id),
    name: row.name,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at ? row.last_used_at.toISOString() : null,
  };
}

export interface PasskeysDeps {
  db: Kysely<Database>;
  sessions: Pick<SessionsService, 'openSession'>;
  audit: AuditLog;
  reauth: Pick<Reauthentication, 'recentSignIn'>;
  /** Keys the WebAuthn user handle, so it is stable per user and tells nothing about them. */
  userHandleKey: Buffer;
  settings: PasskeySettings;
  clock: Clock;
  events: EventRecorder;
}

/** Passkeys (WebAuthn Level 3, discoverable credentials, user verification required). */
export class PasskeysService {
  private readonly db: Kysely<Database>;
  private readonly sessions: Pick<SessionsService, 'openSession'>;
  private readonly events: EventRecorder;
  private readonly audit: AuditLog;
  private readonly reauth: Pick<Reauthentication, 'recentSignIn'>;
  private readonly userHandleKey: Buffer;
  private readonly settings: PasskeySettings;
  private readonly clock: Clock;

  constructor(deps: PasskeysDeps) {
    this.clock = deps.clock;
    this.events = deps.events;
    ({ db: this.db, sessions: this.sessions, audit: this.audit, reauth: this.reauth, userHandleKey: this.userHandleKey, settings: this.settings } = deps);
  }

  /**
   * The user handle (user.id) the authenticator stores with the credential: stable per user, so
   * an authenticator keeps one passkey per account, and no personal data (WebAuthn §14.6.1).
   */
  userHandle(userId: string): Uint8Array<ArrayBuffer> {
    return new Uint8Array(createHmac('sha256', this.userHandleKey).update(`webauthn-user:${userId}`).digest());
  }

  async #newChallenge(challenge: string, purpose: ChallengePurpose, userId: string | null): Promise<void> {
    await insertChallenge(this.db, { challenge, purpose, userId, expiresAt: new Date(this.clock.now() + CHALLENGE_TTL_MS) });
  }

  /** Needs a recent sign-in: the route's guard asks for it (requireCaller({ recentSignIn: true })). */
  async registrationOptions(caller: Caller): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const user = await findUserById(this.db, caller.userId);
    if (!user) throw new AppError('invalid_token');
    const existing = await credentialIdsOf(this.db, caller.userId);
    const options = await generateRegistrationOptions({
      rpName: this.settings.rpName,
      rpID: this.settings.rpId,
      userName: user.username,
      userDisplayName: user.name,
      userID: this.userHandle(user.user_id),
      timeout: CHALLENGE_TTL_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((c) => ({ id: c.credential_id, transports: transportsOf(c.transports) })),
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    });
    await this.#newChallenge(options.challenge, 'register', caller.userId);
    return options;
  }

  async register(caller: Caller, input: { name: string; response: RegistrationResponseJSON }): Promise<Passkey> {
    const name = input.name.trim();
    if (name.length === 0 || [...name].length > NAME_MAX || CONTROL.test(name)) {
      throw validationFailed([{ field: 'name', message: `1 to ${NAME_MAX} characters, no control characters` }]);
    }
    // Checked after the name (a bad name is 400 whoever asks), so not in the route's guard.
    await this.reauth.recentSignIn(caller);

    const challenge = challengeOf(input.response.response.clientDataJSON);
    // Used up whatever comes next: a response gets one try.
    if (!challenge || !(await consumeChallenge(this.db, challenge, 'register', caller.userId, this.clock.now()))) {
      throw new AppError('invalid_passkey', { detail: 'The challenge is unknown, used, expired or not for adding a passkey.' });
    }

    let verified;
    try {
      verified = await verifyRegistrationResponse({
        response: input.response,
        expectedChallenge: challenge,
        expectedOrigin: this.settings.origin,
        expectedRPID: this.settings.rpId,
        requireUserPresence: true,
        requireUserVerification: true,
      });
    } catch (err) {
      throw invalidPasskey(err);
    }
    if (!verified.verified) throw invalidPasskey();
    const { credential, credentialDeviceType, credentialBackedUp } = verified.registrationInfo;
    // The id the client names must be the one the authenticator signed into authData.
    if (credential.id !== input.response.id) throw invalidPasskey();

    let row;
    try {
      row = await this.db.transaction().execute(async (trx) => {
        const added = await insertPasskey(trx, {
          userId: caller.userId,
          credentialId: credential.id,
          publicKey: Buffer.from(credential.publicKey).toString('base64url'),
          counter: credential.counter,
          transports: (credential.transports ?? []).filter((t) => TRANSPORTS.has(t)).join(' '),
          name,
          deviceType: credentialDeviceType,
          backedUp: credentialBackedUp,
        });
        await this.events.record(trx, { type: 'passkey.added', userId: caller.userId, data: { passkey_id: String(added.passkey_id), name, backed_up: credentialBackedUp } });
        return added;
      });
    } catch (err) {
      if (uniqueViolation(err) !== undefined) throw new AppError('passkey_exists');
      throw err;
    }
    await this.audit.record('passkey_added', caller, { passkey_id: String(row.passkey_id), backed_up: credentialBackedUp });
    return toPasskey(row);
  }

  async list(caller: Caller): Promise<Passkey[]> {
    return (await listPasskeys(this.db, caller.userId)).map(toPasskey);
  }

  /** Removes one of the caller's passkeys; anyone else's (or none) is 404. Needs a recent sign-in (the route's guard). */
  async remove(caller: Caller, passkeyId: string): Promise<void> {
    const removed =
      /^[1-9][0-9]{0,17}$/.test(passkeyId) &&
      (await this.db.transaction().execute(async (trx) => {
        const deleted = await deletePasskey(trx, caller.userId, passkeyId);
        if (deleted) await this.events.record(trx, { type: 'passkey.removed', userId: caller.userId, data: { passkey_id: passkeyId } });
        return deleted;
      }));
    if (!removed) throw new AppError('not_found', { detail: 'You have no passkey with that id.' });
    await this.audit.record('passkey_removed', caller, { passkey_id: passkeyId });
  }

  async authenticationOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    // Discoverable credentials: the authenticator offers the passkeys it has for this RP.
    const options = await generateAuthenticationOptions({ rpID: this.settings.rpId, timeout: CHALLENGE_TTL_MS, userVerification: 'required', allowCredentials: [] });
    await this.#newChallenge(options.challenge, 'authenticate', null);
    return options;
  }

  /** Signs in with a passkey: a verified assertion opens a session like a login does. */
  async signIn(response: AuthenticationResponseJSON, client: ClientInfo): Promise<TokenPair> {
    const fail = async (reason: string, userId: string | null = null): Promise<never> => {
      await this.audit.record('passkey_login_failed', { userId, ...client }, { reason });
      throw invalidCredentials();
    };

    const challenge = challengeOf(response.response.clientDataJSON);
    if (!challenge) return fail('malformed');
    if (!(await consumeChallenge(this.db, challenge, 'authenticate', null, this.clock.now()))) return fail('unknown_challenge');

    const passkey = await findPasskeyByCredentialId(this.db, response.id);
    if (!passkey) return fail('unknown_passkey');
    const userId = String(passkey.user_id);
    // The user handle, when the authenticator gives it, must be the one stored with the credential.
    if (response.response.userHandle && response.response.userHandle !== Buffer.from(this.userHandle(userId)).toString('base64url')) {
      return fail('user_handle_mismatch', userId);
    }

    let verified;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.settings.origin,
        expectedRPID: this.settings.rpId,
        credential: {
          id: passkey.credential_id,
          publicKey: new Uint8Array(Buffer.from(passkey.public_key, 'base64url')),
          counter: Number(passkey.counter),
          transports: transportsOf(passkey.transports),
        },
        requireUserVerification: true,
      });
    } catch {
      // A bad signature, origin, RP id, flags or a counter that did not go up (WebAuthn §7.2 step 22).
      return fail('not_verified', userId);
    }
    if (!verified.verified) return fail('not_verified', userId);

    const user = await findUserById(this.db, userId);
    if (!user) return fail('unknown_user');
    // A disabled account answers like any failed sign-in (ASVS 5.0 V7.4.2).
    if (user.disabled_at) return fail('disabled', userId);
    const { newCounter, credentialBackedUp } = verified.authenticationInfo;
    if (!(await recordPasskeyUse(this.db, passkey.passkey_id, passkey.counter, newCounter, credentialBackedUp, this.clock.now()))) {
      return fail('counter_raced', userId); // another sign-in with this passkey moved the counter meanwhile
    }

    // The one place a passkey sign-in opens its session: checks that every way of signing in must
    // pass (such as email verification) belong right here, before it.
    const pair = await this.sessions.openSession(user, client, PASSKEY_AMR);
    await this.audit.record('passkey_login', { userId, sessionId: pair.session.id, ...client }, { passkey_id: String(passkey.passkey_id) });
    return pair;
  }
}

function transportsOf(stored: string): AuthenticatorTransportFuture[] {
  return stored.split(' ').filter((t) => TRANSPORTS.has(t)) as AuthenticatorTransportFuture[];
}
