import { callerOf, type RequireCaller } from '../auth/guard.js';
import type { Config } from '../config.js';
import { bearerAuth, problems } from '../http/schemas.js';
import type { Feature } from '../http/types.js';
import { perMinute } from '../throttling/rate-limit.js';
import { RegisterBody, UpdateProfileBody, User } from './schemas.js';
import { TAKEN, type UsersService } from './service.js';
import { clientOf } from '../core/caller.js';

export interface UsersFeatureDeps {
  users: UsersService;
  requireCaller: RequireCaller;
  config: Pick<Config, 'rateLimitPerMinute'>;
}

/** Registration and the caller's profile. */
export const usersFeature: Feature<UsersFeatureDeps> = async (app, { users, requireCaller, config: { rateLimitPerMinute } }) => {
  app.post(
    '/v1/users',
    {
      config: { rateLimit: perMinute(rateLimitPerMinute) },
      schema: {
        summary: 'Register a new user (create_new_user)',
        tags: ['users'],
        body: RegisterBody,
        response: { 201: User, ...problems('validation_failed', 'weak_password', ...TAKEN, 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request, reply) => {
      const user = await users.register(request.body, clientOf(request));
      return reply.code(201).header('location', '/v1/users/me').send(user);
    },
  );

  app.get(
    '/v1/users/me',
    {
      onRequest: requireCaller(),
      schema: { summary: "The caller's profile", tags: ['users'], security: bearerAuth, response: { 200: User, ...problems('invalid_token') } },
    },
    async (request) => users.profile(callerOf(request).userId),
  );

  app.patch(
    '/v1/users/me',
    {
      onRequest: requireCaller(),
      schema: {
        summary: 'Update profile fields (update_user_details)',
        tags: ['users'],
        security: bearerAuth,
        body: UpdateProfileBody,
        response: { 200: User, ...problems('validation_failed', 'invalid_token', 'reauthentication_required', 'wrong_current_password', ...TAKEN, 'payload_too_large', 'unsupported_media_type', 'too_many_requests') },
      },
    },
    async (request) => users.updateProfile(callerOf(request), request.body),
  );
};
