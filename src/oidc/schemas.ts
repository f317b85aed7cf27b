import { Type } from 'typebox';
import { Timestamp } from '../http/schemas.js';

const Uri = Type.String({ minLength: 1, maxLength: 2000 });

/** The admin API's client endpoints and the permission each needs (API-FEDERATION.md B). */
export const CLIENT_ENDPOINTS = {
  'GET /v1/admin/clients': 'clients:read',
  'POST /v1/admin/clients': 'clients:write',
  'GET /v1/admin/clients/:client_id': 'clients:read',
  'POST /v1/admin/clients/:client_id/secret': 'clients:write',
  'DELETE /v1/admin/clients/:client_id': 'clients:write',
} as const;

export const Client = Type.Object({
  client_id: Type.String(),
  name: Type.String(),
  type: Type.Union([Type.Literal('public'), Type.Literal('confidential'), Type.Literal('service')]),
  redirect_uris: Type.Array(Type.String()),
  post_logout_redirect_uris: Type.Array(Type.String()),
  scopes: Type.Array(Type.String()),
  first_party: Type.Boolean(),
  roles: Type.Array(Type.String()),
  id_token_signed_response_alg: Type.Union([Type.Literal('RS256'), Type.Literal('EdDSA')]),
  created_at: Timestamp,
});
export const ClientWithSecret = Type.Intersect([Client, Type.Object({ client_secret: Type.Optional(Type.String({ description: 'Shown once; stored hashed.' })) })]);
export const ClientList = Type.Object({ clients: Type.Array(Client) });
export const ClientParams = Type.Object({ client_id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });

export const NewClientBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    type: Type.Union([Type.Literal('public'), Type.Literal('confidential'), Type.Literal('service')]),
    redirect_uris: Type.Optional(Type.Array(Uri, { maxItems: 20 })),
    post_logout_redirect_uris: Type.Optional(Type.Array(Uri, { maxItems: 20 })),
    scopes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 30, description: 'Default: openid profile email offline_access.' })),
    first_party: Type.Optional(Type.Boolean({ description: 'Skips the consent page.' })),
    roles: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_-]{1,31}$' }), { maxItems: 20, description: 'Service clients: roles of the admin API its tokens carry.' })),
    id_token_signed_response_alg: Type.Optional(Type.Union([Type.Literal('RS256'), Type.Literal('EdDSA')])),
  },
  { additionalProperties: false },
);

export const RequestParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }) });
export const PendingRequest = Type.Object({
  client: Type.Object({ client_id: Type.String(), name: Type.String(), first_party: Type.Boolean() }),
  scopes: Type.Array(Type.String()),
  login_required: Type.Boolean({ description: 'The app asks for a fresh sign-in (prompt=login, max_age): sign in again first.' }),
  consent_required: Type.Boolean({ description: 'Show the consent page; otherwise answer allow at once.' }),
});
export const RequestAnswer = Type.Object({ decision: Type.Union([Type.Literal('allow'), Type.Literal('deny')]) }, { additionalProperties: false });
export const RedirectTo = Type.Object({ redirect_to: Type.String({ description: 'Send the browser there: the app, with a code or an error.' }) });

export const GrantList = Type.Object({
  grants: Type.Array(Type.Object({ client_id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()), created_at: Timestamp })),
});
export const GrantParams = ClientParams;
