import { Type } from 'typebox';
import { callerOf } from '../auth/guard.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { App, Guard } from '../http/types.js';
import { CurrentPassword, NewPassword } from '../users/schemas.js';
import type { CredentialsService } from './service.js';

const ChangePasswordBody = Type.Object({ current_password: CurrentPassword, new_password: NewPassword }, { additionalProperties: false });

export function credentialsRoutes(app: App, credentials: CredentialsService, guard: Guard): void {
  app.put(
    '/v1/users/me/password',
    {
      onRequest: guard,
      schema: {
        summary: 'Change password (update_user_password); other sessions are revoked',
        tags: ['users'],
        security: bearerAuth,
        body: ChangePasswordBody,
        response: {
          204: NoContent,
          ...problems('validation_failed', 'weak_password', 'invalid_token', 'wrong_current_password', 'password_reused', 'payload_too_large', 'unsupported_media_type', 'too_many_requests'),
        },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      await credentials.changePassword(caller, request.body.current_password, request.body.new_password);
      return reply.code(204).send(null);
    },
  );
}
