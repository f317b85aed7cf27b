import { Type, type Static } from 'typebox';
import { Id, Timestamp } from '../http/schemas.js';
import { Matching } from '../http/validation.js';

// The browser's PublicKeyCredential JSON (WebAuthn Level 3 toJSON(), as @simplewebauthn/browser
// sends it). Only the shape is checked here; the verifier checks the content. Extra members that
// browsers add (extension outputs, hints) are let through.
const B64url = (maxLength: number) => Matching('^[A-Za-z0-9_-]+={0,2}$', 'must be base64url (A-Z a-z 0-9 - _)', { minLength: 1, maxLength });

export const RegistrationResponse = Type.Object(
  {
    id: B64url(1366),
    rawId: B64url(1366),
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: B64url(4096),
        attestationObject: B64url(12_000),
        transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 16 })),
      },
      { additionalProperties: true },
    ),
    clientExtensionResults: Type.Object({}, { additionalProperties: true }),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: true },
);

export const AuthenticationResponse = Type.Object(
  {
    id: B64url(1366),
    rawId: B64url(1366),
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: B64url(4096),
        authenticatorData: B64url(4096),
        signature: B64url(1024),
        userHandle: Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Null()])),
      },
      { additionalProperties: true },
    ),
    clientExtensionResults: Type.Object({}, { additionalProperties: true }),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: true },
);

// The name is trimmed and checked for control characters by the service.
export const AddPasskeyBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 256, examples: ['Laptop'] }), response: RegistrationResponse },
  { additionalProperties: false },
);
export type AddPasskeyBody = Static<typeof AddPasskeyBody>;

export const PasskeySignInBody = Type.Object({ response: AuthenticationResponse }, { additionalProperties: false });
export type PasskeySignInBody = Static<typeof PasskeySignInBody>;

export const Passkey = Type.Object({
  id: Id,
  name: Type.String(),
  created_at: Timestamp,
  last_used_at: Type.Union([Timestamp, Type.Null()]),
});
export type Passkey = Static<typeof Passkey>;

export const PasskeyList = Type.Object({ passkeys: Type.Array(Passkey) });

export const PasskeyIdParams = Type.Object({ id: Type.String() });

// The options objects go to the browser as @simplewebauthn/server makes them.
export const CreationOptions = Type.Object(
  { challenge: Type.String(), rp: Type.Object({}, { additionalProperties: true }), user: Type.Object({}, { additionalProperties: true }) },
  { additionalProperties: true, description: 'PublicKeyCredentialCreationOptionsJSON, for navigator.credentials.create().' },
);
export const RequestOptions = Type.Object(
  { challenge: Type.String() },
  { additionalProperties: true, description: 'PublicKeyCredentialRequestOptionsJSON, for navigator.credentials.get().' },
);
