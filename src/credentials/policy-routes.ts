import { Type } from 'typebox';
import type { App } from '../http/types.js';
import { PASSWORD_MAX_LENGTH } from './policy.js';

export const PasswordPolicy = Type.Object(
  {
    min_length: Type.Integer({ description: 'The fewest characters a new password may have (PASSWORD_MIN_LENGTH, 8–64), counted after NFKC normalisation.', examples: [8] }),
    max_length: Type.Integer({ description: 'The most characters a new password may have.', examples: [PASSWORD_MAX_LENGTH] }),
  },
  { additionalProperties: false },
);

/**
 * The password rules a client shows before the user types (the web app among them), so no
 * client copies PASSWORD_MIN_LENGTH. The other rules (not a common password, not the username
 * or email) are judged on the server and named in the 400 weak_password answer.
 */
export function passwordPolicyRoutes(app: App, minLength: number): void {
  const policy = { min_length: minLength, max_length: PASSWORD_MAX_LENGTH };
  app.get('/v1/password-policy', { schema: { summary: 'The password rules for a new password: its shortest and longest length', tags: ['users'], response: { 200: PasswordPolicy } } }, async () => policy);
}
