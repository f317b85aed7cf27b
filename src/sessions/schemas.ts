import { Type, type Static } from 'typebox';
import { Id, Timestamp } from '../http/schemas.js';
import { CurrentPassword } from '../core/fields.js';
import { User } from '../users/schemas.js';

// Either username or email, never both (checked by the service, which names the field).
export const LoginBody = Type.Object(
  {
    username: Type.Optional(Type.String({ maxLength: 254 })),
    email: Type.Optional(Type.String({ maxLength: 254 })),
    password: CurrentPassword,
  },
  { additionalProperties: false },
);
export type LoginBody = Static<typeof LoginBody>;

// A token of the wrong shape is answered as an unknown one (401), not as a validation failure.
export const RefreshBody = Type.Object({ refresh_token: Type.String() }, { additionalProperties: false });
export type RefreshBody = Static<typeof RefreshBody>;

// Tokens and codes of the wrong shape are answered as wrong ones (401), not as validation failures.
export const MfaLoginBody = Type.Object(
  { mfa_token: Type.String({ description: 'A token of the wrong shape is answered as an unknown one (401 invalid_mfa_token).' }), code: Type.String({ maxLength: 64, description: 'A 6-digit TOTP code, or a recovery code.' }) },
  { additionalProperties: false },
);
export type MfaLoginBody = Static<typeof MfaLoginBody>;

export const TokenPair = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Lifetime of the access token in seconds.' }),
  refresh_token: Type.Optional(
    Type.String({ description: 'Absent in cookie mode (X-Token-Delivery: cookie): the refresh token is then in an HttpOnly cookie.' }),
  ),
  session: Type.Object({ id: Id, created_at: Timestamp, expires_at: Timestamp }),
  user: User,
});
export type TokenPair = Static<typeof TokenPair>;

export const Session = Type.Object({
  id: Id,
  created_at: Timestamp,
  last_used_at: Timestamp,
  expires_at: Timestamp,
  is_active: Type.Boolean(),
  current: Type.Boolean({ description: 'True for the session of the token that asked.' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
});
export type Session = Static<typeof Session>;

export const SessionList = Type.Object({ sessions: Type.Array(Session) });

export const SessionIdParams = Type.Object({ id: Type.String() });

/** `POST /v1/sessions/introspect`: the bearer token's session is active (an inactive one is 401). */
export const SessionIntrospection = Type.Object({
  active: Type.Literal(true),
  sub: Type.String({ description: 'The user id.' }),
  sid: Type.String({ description: 'The session id.' }),
});
