import { Type, type Static } from 'typebox';
import { Id, Timestamp } from '../http/schemas.js';
import { Checked, Matching } from '../http/validation.js';
import { dobProblem, nameProblem, newEmailProblem } from './rules.js';
import { CurrentPassword, NewPassword } from '../core/fields.js';

// Shared field schemas now live in core/fields.ts; re-exported for existing imports.
export { CurrentPassword, NewPassword };
export { EmailLookup } from '../core/fields.js';

// Field rules of API.md. Lengths count code points (JSON Schema does too). A rule JSON Schema
// cannot state is a check of rules.ts run in the same pass, so one answer names every bad field.
export const Username = Matching('^[A-Za-z0-9_.-]+$', 'may contain only letters, digits, "_", "." and "-"', { minLength: 3, maxLength: 32, examples: ['ada_l'] });
// Trimmed by the service; unbounded here but for the 16 KiB body limit, so the one message says the rule.
export const Name = Checked('name', nameProblem, { description: '1–100 characters after trimming; no control characters.', examples: ['Ada Lovelace'] });
export const Dob = Checked('dob', dobProblem, { format: 'date', description: 'YYYY-MM-DD, not in the future, at most 150 years ago.', examples: ['1990-12-10'] });
export const Email = Checked('email', newEmailProblem, { format: 'email', maxLength: 254, description: 'At most 254 characters, 64 before the @.', examples: ['ada@example.com'] });
// ASVS 5.0 V15.3.3: additionalProperties false on every body (no mass assignment); V2.2.1 positive validation.
export const RegisterBody = Type.Object(
  { username: Username, name: Name, dob: Dob, email: Email, password: NewPassword },
  { additionalProperties: false },
);
export type RegisterBody = Static<typeof RegisterBody>;

export const UpdateProfileBody = Type.Object(
  {
    username: Type.Optional(Username),
    name: Type.Optional(Name),
    dob: Type.Optional(Dob),
    email: Type.Optional(Email),
    // API.md: proof of presence for an email change, when the session is not a recent sign-in.
    current_password: Type.Optional({ ...CurrentPassword, description: 'Proves it is the owner: needed to change the email unless the session was opened in the last 15 minutes.' }),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateProfileBody = Static<typeof UpdateProfileBody>;

export const User = Type.Object({
  id: Id,
  username: Type.String(),
  name: Type.String(),
  dob: Type.Union([Type.String({ format: 'date' }), Type.Null()], { description: 'Null for a user imported without one; the web app asks for it.' }),
  email: Type.String(),
  email_verified: Type.Boolean({ description: 'The email address was shown to reach the user (a verification link or a completed password reset).' }),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type User = Static<typeof User>;
