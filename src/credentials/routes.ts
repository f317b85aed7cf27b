import { Type } from 'typebox';
import { callerOf, type RequireCaller } from '../auth/guard.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { CurrentPassword, NewPassword } from '../core/fields.js';
import type { CredentialsService } from './service.js';
import type { Config } from '../config.js';
import { passwordPolicyRoutes } from './policy-routes.js';
import { eraseCredentials } from './repository.js';
import type { AccountErasure } from '../core/erasure.js';

// current_password is left out only to set a first password (a user who signed up with another provider, on a recent session).
const ChangePasswordBody = Type.Object({ current_password: Type.Optional(CurrentPassword), new_password: NewPassword }, { additionalProperties: false });

export interface CredentialsFeatureDeps {
  credentials: CredentialsService;
  erasure: AccountErasure;
  requireCaller: RequireCaller;
  config: Config;
}

/** The password change. */
export const credentialsFeature: Feature<CredentialsFeatureDeps> = async (app, { credentials, erasure, requireCaller, config }) => {
  erasure.add('credentials', eraseCredentials);
  passwordPolicyRoutes(app, config.passwordMinLength);
  app.put(
    '/v1/users/me/password',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Change password (update_user_password); other sessions are revoked',
        tags: ['users'],
        security: bearerAuth,
        body: ChangePasswordBody,
        response: {
          204: NoContent,
          ...problems('validation_failed', 'weak_password', 'invalid_token', 'wrong_current_password', 'reauthentication_required', 'password_reused', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      await credentials.changePassword(caller, request.body.current_password, request.body.new_password);
      return reply.code(204).send(null);
    },
  );
};
