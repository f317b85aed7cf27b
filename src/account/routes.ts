import { Type } from 'typebox';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { perMinute } from '../throttling/rate-limit.js';
import { CurrentPassword, EmailLookup, NewPassword } from '../core/fields.js';
import { AccountDeletion, type AccountDeletionDeps } from './deletion.js';
import type { EmailVerification } from './email-verification.js';
import { PasswordReset, type PasswordResetDeps } from './password-reset.js';
import { eraseTokens, pruneTokens } from './tokens.js';
import { clientOf } from '../core/caller.js';

// A token of the wrong shape is answered like an unknown one (API.md, Errors), so any string up
// to a size that keeps bodies small passes validation.
// No length bound: a token of the wrong shape is answered as an unknown one (the body limit bounds it).
const Token = Type.String({ description: 'The token from the link in the mail (after #token=).' });

const VerifyEmailBody = Type.Object({ token: Token }, { additionalProperties: false });
const ResetRequestBody = Type.Object({ email: EmailLookup }, { additionalProperties: false });
const ResetCompleteBody = Type.Object({ token: Token, new_password: NewPassword }, { additionalProperties: false });
// Optional for a user without a password (core/reauth.ts ownerProof).
const DeleteAccountBody = Type.Object({ current_password: Type.Optional(CurrentPassword) }, { additionalProperties: false });

const Accepted = Type.Object({ status: Type.Literal('accepted') }, { description: 'Accepted; the mail, if any, is on its way.' });
const ACCEPTED = { status: 'accepted' as const };

export interface AccountFeatureDeps extends Omit<PasswordResetDeps, 'config'>, Omit<AccountDeletionDeps, 'pseudonymKey'> {
  /** Built with the shared services: the users feature tells it of registrations and email changes. */
  verification: EmailVerification;
  requireCaller: RequireCaller;
  config: Pick<Config, 'rateLimitPerMinute' | 'publicUrl'>;
  /** A secret of the service's (service_secrets), by name. */
  secret(name: string): Promise<Buffer>;
}

/** Email verification, password reset, self-service deletion. */
export const accountFeature: Feature<AccountFeatureDeps> = async (app, deps) => {
  const { requireCaller, config } = deps;
  const { rateLimitPerMinute } = config;
  const services = {
    verification: deps.verification,
    reset: new PasswordReset({ ...deps, config: { publicUrl: config.publicUrl, rateLimitPerMinute } }),
    deletion: new AccountDeletion({ ...deps, pseudonymKey: await deps.secret('audit_pseudonym') }),
  };
  deps.erasure.add('account', eraseTokens);
  backgroundJob(app, 'pruning mail tokens', PRUNE_EVERY_MS, () => pruneTokens(deps.db, deps.clock.now()));

  app.post(
    '/v1/email-verifications',
    {
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Verify the email address with the token from the verification mail',
        tags: ['account'],
        body: VerifyEmailBody,
        response: { 204: NoContent, ...problems('validation_failed', 'invalid_verification_token', 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      await services.verification.verify(request.body.token, clientOf(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/users/me/email-verification',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Send a new verification mail (at most 5 an hour)',
        tags: ['account'],
        security: bearerAuth,
        response: { 202: Accepted, ...problems('invalid_token', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      await services.verification.requestNew(callerOf(request));
      return reply.code(202).send(ACCEPTED);
    },
  );

  // The work a reset request answers for starts only once its answer has gone (see PasswordReset.request).
  const afterResponse = new WeakMap<object, () => void>();
  app.post(
    '/v1/password-resets',
    {
      onResponse: async (request) => {
        const work = afterResponse.get(request);
        afterResponse.delete(request);
        // After the events that deliver the answer, too.
        if (work) setImmediate(work);
      },
      schema: {
        summary: 'Ask for a password reset mail; the same 202 whether or not the address has an account',
        tags: ['account'],
        body: ResetRequestBody,
        response: { 202: Accepted, ...problems('validation_failed', 'payload_too_large', 'unsupported_media_type') },
      },
    },
    async (request, reply) => {
      afterResponse.set(request, await services.reset.request(request.body.email, clientOf(request)));
      return reply.code(202).send(ACCEPTED);
    },
  );

  app.post(
    '/v1/password-resets/complete',
    {
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Set a new password with the token from the reset mail; every session ends',
        tags: ['account'],
        body: ResetCompleteBody,
        response: {
          204: NoContent,
          ...problems('validation_failed', 'invalid_reset_token', 'weak_password', 'password_reused', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request, reply) => {
      await services.reset.complete(request.body.token, request.body.new_password, clientOf(request));
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/users/me',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Delete the account: every session ends, the user is gone, the audit log keeps a pseudonym',
        tags: ['account'],
        security: bearerAuth,
        body: DeleteAccountBody,
        response: { 204: NoContent, ...problems('validation_failed', 'invalid_token', 'wrong_current_password', 'reauthentication_required', 'last_admin', 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      await services.deletion.deleteAccount(callerOf(request), request.body.current_password);
      return reply.code(204).send(null);
    },
  );
};
