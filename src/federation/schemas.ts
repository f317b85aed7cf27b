import { Type } from 'typebox';
import { Id, Timestamp } from '../http/schemas.js';
import { Dob, Username } from '../users/schemas.js';

export const ProviderList = Type.Object({
  providers: Type.Array(Type.Object({ name: Type.String(), label: Type.String() })),
});

export const ProviderParams = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9]{0,31}$' }) });
export const IdentityParams = Type.Object({ id: Id });

export const AuthorizeQuery = Type.Object({ return_to: Type.Optional(Type.String({ maxLength: 2048 })) });

/** The provider's answer: RFC 6749 §4.1.2 (a code) or §4.1.2.1 (an error); anything else it adds is passed on to the checks. */
export const CallbackParams = Type.Record(Type.String(), Type.String());

export const Identity = Type.Object({
  id: Type.String(),
  provider: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp,
  last_used_at: Type.Union([Timestamp, Type.Null()]),
});
export const IdentityList = Type.Object({ identities: Type.Array(Identity) });
export const AuthorizeUrl = Type.Object({ authorize_url: Type.String() });

export const PendingSignUp = Type.Object({
  provider: Type.String(),
  email: Type.String(),
  email_verified: Type.Boolean(),
  name: Type.String(),
  username: Type.Union([Type.String(), Type.Null()], { description: "The provider's username when it is free here, to prefill." }),
});
export const CompleteSignUpBody = Type.Object({ username: Username, dob: Dob }, { additionalProperties: false });
export const SignedUp = Type.Object({ return_to: Type.String({ description: 'Where to go next; the refresh cookie is set: POST /v1/sessions/refresh with X-Token-Delivery: cookie.' }) });
