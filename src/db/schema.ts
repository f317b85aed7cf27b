import type { ColumnType, Generated, GeneratedAlways, Insertable, Selectable } from 'kysely';

/**
 * Today's tables as the code sees them. Migrations never import these types: a migration is
 * frozen at the day it was written, this file follows the latest one.
 *
 * int8 ids come back as strings (the driver switch sets the parser), which is also how the API
 * shows them; `date` comes back as 'YYYY-MM-DD'.
 */

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp the database fills in (now()) unless given. */
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Id = ColumnType<string, string | number | bigint, string | number | bigint>;

export interface UsersTable {
  user_id: GeneratedAlways<string>;
  username: string;
  /** lower(username), kept by the database: the case-insensitive unique key. */
  username_key: GeneratedAlways<string>;
  name: string;
  /** Null for a user imported without one: the web app asks for it at the next sign-in. */
  dob: string | null;
  email: string;
  /** lower(email), kept by the database: the case-insensitive unique key. */
  email_key: GeneratedAlways<string>;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
  /** Set while an administrator has disabled the user: no sign-in. */
  disabled_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** The email address was shown to reach the user (a verification link or a completed reset). */
  email_verified: Generated<boolean>;
  /** Why an administrator disabled the user (migration 0013). */
  disabled_reason: ColumnType<string | null, string | null | undefined, string | null>;
  /** The user's id in the system they were imported from (`auth0|5f1c...`); unique when set. */
  external_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface UserCredentialsTable {
  credentials_id: GeneratedAlways<string>;
  user_id: Id;
  /** A PHC string (Argon2id), or an imported hash (see credentials/verifiers/). */
  hashed_password: string;
  is_current: boolean;
  created_at: DefaultedTimestamp;
  /** Brought in by an import: replaced by our own Argon2id at the first sign-in. */
  imported: Generated<boolean>;
}

export interface UserSessionsTable {
  session_id: GeneratedAlways<string>;
  user_id: Id;
  created_at: DefaultedTimestamp;
  is_active: Generated<boolean>;
  expires_at: Timestamp;
  last_used_at: DefaultedTimestamp;
  ended_at: Timestamp | null;
  /** Why the session ended: logout, revoked, password_changed, refresh_reuse, ... */
  end_reason: string | null;
  user_agent: string | null;
  ip: string | null;
  /** SHA-256 (base64url) of the refresh token that works now. */
  refresh_token_hash: string;
  /** SHA-256 of the token it was traded for, answered again within REFRESH_RETRY_S. */
  previous_refresh_token_hash: string | null;
  refresh_rotated_at: Timestamp | null;
  /** How many times the refresh token was rotated. */
  refresh_generation: Generated<number>;
  /** RFC 8176 methods the session was signed in with, space-separated: `pwd`, `pwd otp mfa`, `swk mfa`. */
  amr: ColumnType<string, string | undefined, string>;
  /** A client's session (oauth_sessions): the browser session it was opened from; ending that ends this. */
  parent_session_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  /** JWK JSON of the public key. */
  public_jwk: string;
  /** JWK JSON of the private key. */
  private_jwk: string;
  created_at: DefaultedTimestamp;
  /** Signs from this time on; published in the JWKS before. */
  activates_at: DefaultedTimestamp;
  /** Stops verifying, and leaves the JWKS, at this time. */
  retired_at: Timestamp | null;
}

export interface ServiceSecretsTable {
  name: string;
  /** base64url bytes. */
  secret: string;
  created_at: DefaultedTimestamp;
}

export interface LoginThrottlesTable {
  /** `account:<user id>|<address>` or `name:<lower-cased name>|<address>`. */
  throttle_key: string;
  failures: number;
  /** Attempts being checked right now. */
  pending: ColumnType<number, number | undefined, number>;
  locked_until: Timestamp | null;
  updated_at: DefaultedTimestamp;
}

export interface RateLimitHitsTable {
  bucket: string;
  window_start: Timestamp;
  hits: number;
}

export interface AuditEventsTable {
  event_id: GeneratedAlways<string>;
  occurred_at: DefaultedTimestamp;
  event: string;
  user_id: Id | null;
  session_id: Id | null;
  ip: string | null;
  user_agent: string | null;
  /** JSON text of event-specific details; never a secret. */
  details: string | null;
  /** Set in place of user_id once the user deleted their account: a keyed HMAC of the old id. */
  subject_pseudonym: ColumnType<string | null, string | null | undefined, string | null>;
  /** The administrator who acted on user_id; null for the user's own doings (migration 0013). */
  actor_id: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
}

export type AccountTokenKind = 'verify_email' | 'password_reset';

export interface AccountTokensTable {
  token_id: GeneratedAlways<string>;
  /** SHA-256 (base64url) of the token sent by mail. */
  token_hash: string;
  user_id: Id;
  kind: AccountTokenKind;
  /** The address the token was sent to; it works only while that is still the user's email. */
  email: string;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  created_at: DefaultedTimestamp;
}

export interface UserPasskeysTable {
  passkey_id: GeneratedAlways<string>;
  user_id: Id;
  /** The WebAuthn credential id, base64url; unique across all users. */
  credential_id: string;
  /** The COSE public key, base64url. */
  public_key: string;
  /** The last signature counter seen (0 for authenticators that keep none). */
  counter: ColumnType<string, number | string | undefined, number | string>;
  /** Space-separated transport hints (`internal hybrid usb`...). */
  transports: ColumnType<string, string | undefined, string>;
  name: string;
  /** `singleDevice` or `multiDevice` (WebAuthn backup eligibility). */
  device_type: string;
  backed_up: boolean;
  created_at: DefaultedTimestamp;
  last_used_at: Timestamp | null;
}

export interface WebauthnChallengesTable {
  /** base64url, as it comes back in clientDataJSON. */
  challenge: string;
  purpose: 'register' | 'authenticate';
  /** The user adding a passkey; null for a sign-in challenge. */
  user_id: Id | null;
  expires_at: Timestamp;
}

export interface UserTotpFactorsTable {
  user_id: Id;
  /** AES-256-GCM envelope of the base32 secret (see crypto/data-encryption.ts). */
  secret_encrypted: string;
  created_at: DefaultedTimestamp;
  /** Null while the set-up is pending. */
  confirmed_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** The last accepted time step (RFC 6238 counter): no code of it or an earlier one is accepted again. */
  last_used_step: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
}

export interface UserRecoveryCodesTable {
  recovery_code_id: GeneratedAlways<string>;
  user_id: Id;
  /** SHA-256 (hex) of the normalised code. */
  code_hash: string;
  created_at: DefaultedTimestamp;
  used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface MfaTokensTable {
  /** SHA-256 (base64url) of the token. */
  token_hash: string;
  user_id: Id;
  /** The client address the token was given to; it works from there only. */
  ip: string | null;
  created_at: DefaultedTimestamp;
  expires_at: Timestamp;
  used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Wrong codes tried with this token; at 5 it is dead. */
  failures: ColumnType<number, number | undefined, number>;
  /** The first step's amr: 'pwd', or 'fed' after another provider. */
  first_factor: ColumnType<string, string | undefined, string>;
}

export interface UserIdentitiesTable {
  identity_id: GeneratedAlways<string>;
  user_id: Id;
  /** The provider's name in IDENTITY_PROVIDERS. */
  provider: string;
  /** The provider's id of the account (OpenID `sub`, GitHub's numeric id). */
  subject: string;
  email: string | null;
  /** The provider vouched for the email when it was last seen. */
  email_verified: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: DefaultedTimestamp;
  last_used_at: Timestamp | null;
}

export interface FederationStatesTable {
  /** SHA-256 (base64url) of the `state` sent to the provider. */
  state_hash: string;
  /** SHA-256 (base64url) of the browser's binding cookie. */
  binding_hash: string;
  provider: string;
  /** The signed-in user linking another account; null for a sign-in. */
  user_id: Id | null;
  nonce: string;
  /** The PKCE code verifier (RFC 7636), useless without the code the provider sends to this browser. */
  code_verifier: string;
  return_to: string;
  expires_at: Timestamp;
}

export interface FederationSignupsTable {
  token_hash: string;
  binding_hash: string;
  provider: string;
  subject: string;
  email: string;
  email_verified: boolean;
  name: string;
  username_hint: string | null;
  return_to: string;
  expires_at: Timestamp;
}

// Administration (migration 0013, src/admin/).
export interface RolesTable {
  name: string;
  description: ColumnType<string, string | undefined, string>;
  /** admin and support: their permissions are in code (src/admin/permissions.ts). */
  builtin: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
}

export interface RolePermissionsTable {
  role_name: string;
  permission: string;
}

export interface UserRolesTable {
  user_id: Id;
  role_name: string;
  granted_at: DefaultedTimestamp;
  granted_by: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
}

/** Organizations (migration 0017, API-ORGS.md). */
export interface OrganizationsTable {
  org_id: GeneratedAlways<string>;
  name: string;
  slug: string;
  created_by: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  created_at: DefaultedTimestamp;
}

export interface OrgRolesTable {
  org_id: Id;
  name: string;
  /** Organization permissions, space-separated. */
  permissions: string;
}

export interface OrgMembersTable {
  org_id: Id;
  user_id: Id;
  role: string;
  joined_at: DefaultedTimestamp;
}

export interface OrgInvitationsTable {
  invitation_id: GeneratedAlways<string>;
  org_id: Id;
  email: string;
  /** lookupKey(email): the address an invitation is matched on. */
  email_key: string;
  role: string;
  /** SHA-256 (base64url) of the mailed token. */
  token_hash: string;
  invited_by: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  created_at: DefaultedTimestamp;
  expires_at: Timestamp;
}

/** The organization a session speaks for (POST /v1/sessions/organization). */
export interface SessionOrgsTable {
  session_id: Id;
  org_id: Id;
}

export interface WebhookEndpointsTable {
  endpoint_id: GeneratedAlways<string>;
  url: string;
  /** ' type type ' or '*'. */
  events: string;
  description: ColumnType<string, string | undefined, string>;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  disabled_reason: ColumnType<string | null, string | null | undefined, string | null>;
  /** DATA_ENCRYPTION_KEY envelope of the whsec_ secret. */
  secret: string;
  previous_secret: ColumnType<string | null, string | null | undefined, string | null>;
  previous_secret_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  created_at: DefaultedTimestamp;
}

export interface OutboxTable {
  outbox_id: GeneratedAlways<string>;
  /** 'webhook' or 'mail'. */
  kind: string;
  endpoint_id: ColumnType<string | null, string | number | bigint | null | undefined, string | number | bigint | null>;
  /** The webhook-id (msg_...), the same on every attempt. */
  message_id: string;
  event_type: string;
  /** A user's messages to one endpoint go in order (the user id). */
  order_key: ColumnType<string | null, string | null | undefined, string | null>;
  /** The webhook body, or the mail (encrypted: it holds live links). */
  payload: string;
  /** 'pending', 'delivered' or 'failed'. */
  status: ColumnType<string, string | undefined, string>;
  attempts: ColumnType<number, number | undefined, number>;
  /** Null: due now. */
  next_attempt_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  lease_owner: ColumnType<string | null, string | null | undefined, string | null>;
  lease_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  last_status: ColumnType<number | null, number | null | undefined, number | null>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: DefaultedTimestamp;
  finished_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface OutboxAttemptsTable {
  attempt_id: GeneratedAlways<string>;
  outbox_id: Id;
  attempted_at: Timestamp;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

export interface Database {
  webhook_endpoints: WebhookEndpointsTable;
  outbox: OutboxTable;
  outbox_attempts: OutboxAttemptsTable;
  roles: RolesTable;
  role_permissions: RolePermissionsTable;
  user_roles: UserRolesTable;
  account_tokens: AccountTokensTable;
  audit_events: AuditEventsTable;
  login_throttles: LoginThrottlesTable;
  rate_limit_hits: RateLimitHitsTable;
  users: UsersTable;
  user_credentials: UserCredentialsTable;
  user_sessions: UserSessionsTable;
  user_passkeys: UserPasskeysTable;
  webauthn_challenges: WebauthnChallengesTable;
  signing_keys: SigningKeysTable;
  service_secrets: ServiceSecretsTable;
  user_totp_factors: UserTotpFactorsTable;
  user_recovery_codes: UserRecoveryCodesTable;
  mfa_tokens: MfaTokensTable;
  user_identities: UserIdentitiesTable;
  federation_states: FederationStatesTable;
  federation_signups: FederationSignupsTable;
  oauth_clients: OAuthClientsTable;
  oauth_requests: OAuthRequestsTable;
  oauth_codes: OAuthCodesTable;
  oauth_grants: OAuthGrantsTable;
  oauth_sessions: OAuthSessionsTable;
  oauth_signing_keys: OAuthSigningKeysTable;
  organizations: OrganizationsTable;
  org_roles: OrgRolesTable;
  org_members: OrgMembersTable;
  org_invitations: OrgInvitationsTable;
  session_orgs: SessionOrgsTable;
  service_instances: ServiceInstancesTable;
}

export interface OAuthClientsTable {
  client_id: string;
  name: string;
  /** public | confidential | service */
  type: string;
  /** JSON arrays of exact URIs. */
  redirect_uris: string;
  post_logout_redirect_uris: string;
  /** Space-separated scopes the client may ask for. */
  scopes: string;
  first_party: boolean;
  /** JSON array of role names (service clients). */
  roles: string;
  id_token_alg: ColumnType<string, string | undefined, string>;
  /** SHA-256 (base64url) of the client secret; null for a public client. */
  secret_hash: string | null;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
}

export interface OAuthRequestsTable {
  request_hash: string;
  client_id: string;
  redirect_uri: string;
  scope: string;
  state: string | null;
  nonce: string | null;
  code_challenge: string;
  resource: string | null;
  prompt: string | null;
  max_age: number | null;
  created_at: Timestamp;
  expires_at: Timestamp;
}

export interface OAuthCodesTable {
  code_hash: string;
  client_id: string;
  user_id: Id;
  browser_session_id: Id;
  redirect_uri: string;
  scope: string;
  nonce: string | null;
  code_challenge: string;
  resource: string | null;
  auth_time: Timestamp;
  expires_at: Timestamp;
  used_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  issued_session_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface OAuthGrantsTable {
  user_id: Id;
  client_id: string;
  scopes: string;
  created_at: DefaultedTimestamp;
}

export interface OAuthSessionsTable {
  session_id: Id;
  client_id: string;
  user_id: Id;
  scope: string;
  resource: string | null;
  auth_time: Timestamp;
}

export interface OAuthSigningKeysTable {
  kid: string;
  alg: string;
  public_jwk: string;
  private_jwk: string;
  created_at: DefaultedTimestamp;
}

/** A running instance and the issuer and audience of its tokens (src/instances). */
export interface ServiceInstancesTable {
  instance_id: string;
  issuer: string;
  audience: string;
  started_at: Timestamp;
  seen_at: Timestamp;
}

export type UserRow = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type SessionRow = Selectable<UserSessionsTable>;
