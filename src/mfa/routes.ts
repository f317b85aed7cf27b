import { Type } from 'typebox';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Clock } from '../core/clock.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { deleteSecondFactors, pruneMfaTokens } from './repository.js';
import type { AccountErasure } from '../core/erasure.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { CurrentPassword } from '../core/fields.js';
import type { MfaService } from './service.js';

// Optional for a user without a password, who needs a sign-in in the last 15 minutes instead (core/reauth.ts ownerProof).
const CurrentPasswordBody = Type.Object({ current_password: Type.Optional(CurrentPassword) }, { additionalProperties: false });
const ConfirmBody = Type.Object({ code: Type.String({ maxLength: 64, description: 'A 6-digit code from the authenticator app.' }) }, { additionalProperties: false });

const TotpSetup = Type.Object({
  secret: Type.String({ description: 'The TOTP secret, base32 (shown once).' }),
  otpauth_url: Type.String({ description: 'otpauth://totp/... for authenticator apps.' }),
  qr_svg: Type.String({ description: 'The otpauth URL as a QR code, an SVG document.' }),
});
const RecoveryCodes = Type.Object({
  recovery_codes: Type.Array(Type.String(), { minItems: 10, maxItems: 10, description: 'Each works once in place of a TOTP code; shown once.' }),
});
const MfaStatus = Type.Object({
  totp: Type.Boolean(),
  recovery_codes_left: Type.Integer(),
  passkeys: Type.Integer(),
});

export interface MfaFeatureDeps {
  db: Kysely<Database>;
  mfa: MfaService;
  erasure: AccountErasure;
  clock: Clock;
  requireCaller: RequireCaller;
}

/** The authenticator app (TOTP) and recovery codes of the caller. */
export const mfaFeature: Feature<MfaFeatureDeps> = async (app, { db, mfa, erasure, clock, requireCaller }) => {
  erasure.add('mfa', async (trx, userId) => void (await deleteSecondFactors(trx, userId)));
  backgroundJob(app, 'pruning mfa tokens', PRUNE_EVERY_MS, () => pruneMfaTokens(db, clock.now()));

  app.get(
    '/v1/users/me/mfa',
    {
      onRequest: requireCaller(),
      schema: { summary: "The caller's second factors", tags: ['mfa'], security: bearerAuth, response: { 200: MfaStatus, ...problems('invalid_token') } },
    },
    async (request) => mfa.status(callerOf(request)),
  );

  app.post(
    '/v1/users/me/mfa/totp',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Start setting up TOTP (pending until confirmed with a code)',
        tags: ['mfa'],
        security: bearerAuth,
        body: CurrentPasswordBody,
        response: {
          201: TotpSetup,
          ...problems('validation_failed', 'invalid_token', 'wrong_current_password', 'reauthentication_required', 'mfa_already_enabled', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request, reply) => reply.code(201).send(await mfa.beginTotp(callerOf(request), request.body.current_password)),
  );

  app.post(
    '/v1/users/me/mfa/totp/confirm',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Confirm TOTP with a first code: it is on, recovery codes are issued, other sessions end',
        tags: ['mfa'],
        security: bearerAuth,
        body: ConfirmBody,
        response: {
          200: RecoveryCodes,
          ...problems('validation_failed', 'invalid_token', 'invalid_mfa_code', 'mfa_not_pending', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request) => mfa.confirmTotp(callerOf(request), request.body.code),
  );

  app.delete(
    '/v1/users/me/mfa/totp',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Turn TOTP off: the secret and the recovery codes are deleted',
        tags: ['mfa'],
        security: bearerAuth,
        body: CurrentPasswordBody,
        response: {
          204: NoContent,
          ...problems('validation_failed', 'invalid_token', 'wrong_current_password', 'reauthentication_required', 'mfa_not_enabled', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request, reply) => {
      await mfa.disableTotp(callerOf(request), request.body.current_password);
      return reply.code(204).send(null);
    },
  );
};
