import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Revocation } from '../core/revocation.js';
import { hashSecret, newSecret } from '../core/secrets.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed, type FieldError } from '../errors.js';
import { ID_TOKEN_ALGS, type IdTokenAlg } from './keys.js';
import { deleteClient, findClient, sessionsOfClient, insertClient, listClients, setClientSecret, type ClientRow } from './repository.js';

export const CLIENT_TYPES = ['public', 'confidential', 'service'] as const;
export type ClientType = (typeof CLIENT_TYPES)[number];

const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,64}$/; // RFC 6749 3.3 scope-token

export interface ClientView {
  client_id: string;
  name: string;
  type: ClientType;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  scopes: string[];
  first_party: boolean;
  roles: string[];
  id_token_signed_response_alg: IdTokenAlg;
  created_at: string;
}

export interface NewClient {
  name: string;
  type: ClientType;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  scopes?: string[];
  first_party?: boolean;
  roles?: string[];
  id_token_signed_response_alg?: IdTokenAlg;
}

export function toClientView(row: ClientRow): ClientView {
  return {
    client_id: row.client_id,
    name: row.name,
    type: row.type as ClientType,
    redirect_uris: JSON.parse(row.redirect_uris) as string[],
    post_logout_redirect_uris: JSON.parse(row.post_logout_redirect_uris) as string[],
    scopes: row.scopes.split(' ').filter(Boolean),
    first_party: Boolean(row.first_party),
    roles: JSON.parse(row.roles) as string[],
    id_token_signed_response_alg: row.id_token_alg as IdTokenAlg,
    created_at: row.created_at.toISOString(),
  };
}

/** A redirect URI a client may register: absolute, no fragment (RFC 6749 3.1.2); plain http only on a loopback host. */
function redirectUriProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URI';
  }
  if (url.hash || value.includes('#')) return 'must not have a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname) ? undefined : 'plain http only on a loopback host';
  // A native app's private-use scheme (RFC 8252 7.1): reverse domain name, with a dot.
  if (/^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(url.protocol)) return undefined;
  if (url.protocol === 'javascript:' || url.protocol === 'data:') return 'not an allowed scheme';
  return 'must be https, loopback http or a private-use scheme';
}

export function checkNewClient(input: NewClient): FieldError[] {
  const errors: FieldError[] = [];
  const uris = (field: string, list: string[] | undefined) =>
    (list ?? []).forEach((uri, i) => {
      const problem = redirectUriProblem(uri);
      if (problem) errors.push({ field: `${field}/${i}`, message: problem });
    });
  uris('redirect_uris', input.redirect_uris);
  uris('post_logout_redirect_uris', input.post_logout_redirect_uris);
  if (input.type !== 'service' && !(input.redirect_uris ?? []).length) errors.push({ field: 'redirect_uris', message: 'a public or confidential client needs at least one' });
  if (input.type === 'service' && (input.redirect_uris ?? []).length) errors.push({ field: 'redirect_uris', message: 'a service client signs nobody in: no redirect URIs' });
  (input.scopes ?? []).forEach((scope, i) => {
    if (!SCOPE_TOKEN.test(scope)) errors.push({ field: `scopes/${i}`, message: 'not a scope token (RFC 6749 3.3)' });
  });
  if ((input.roles ?? []).length && input.type !== 'service') errors.push({ field: 'roles', message: 'only a service client holds roles' });
  if (input.id_token_signed_response_alg && !ID_TOKEN_ALGS.includes(input.id_token_signed_response_alg)) errors.push({ field: 'id_token_signed_response_alg', message: 'RS256 or EdDSA' });
  return errors;
}

/**
 * The clients of the OpenID Provider, for the admin API and the command line. A secret (of a
 * confidential or service client) is 256 random bits, shown once and stored as its SHA-256.
 */
export class OAuthClients {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    /** Ends the sessions of a deleted client. */
    private readonly revocation: Revocation,
  ) {}

  #now(): Date {
    return new Date(this.clock.now());
  }

  async createClient(input: NewClient): Promise<ClientView & { client_secret?: string }> {
    const errors = checkNewClient(input);
    if (errors.length) throw validationFailed(errors);
    const clientId = randomBytes(16).toString('base64url');
    const secret = input.type === 'public' ? undefined : newSecret();
    await insertClient(this.db, {
      client_id: clientId,
      name: input.name,
      type: input.type,
      redirect_uris: JSON.stringify(input.redirect_uris ?? []),
      post_logout_redirect_uris: JSON.stringify(input.post_logout_redirect_uris ?? []),
      scopes: [...new Set(input.scopes ?? ['openid', 'profile', 'email', 'offline_access'])].join(' '),
      first_party: input.first_party ?? false,
      roles: JSON.stringify(input.roles ?? []),
      id_token_alg: input.id_token_signed_response_alg ?? 'RS256',
      secret_hash: secret === undefined ? null : hashSecret(secret),
    });
    const view = toClientView((await findClient(this.db, clientId))!);
    return secret === undefined ? view : { ...view, client_secret: secret };
  }

  async listClients(): Promise<ClientView[]> {
    return (await listClients(this.db)).map(toClientView);
  }

  async showClient(clientId: string): Promise<ClientView> {
    const row = await findClient(this.db, clientId);
    if (!row) throw new AppError('not_found', { detail: 'There is no client with that id.' });
    return toClientView(row);
  }

  async rotateSecret(clientId: string): Promise<ClientView & { client_secret: string }> {
    const row = await findClient(this.db, clientId);
    if (!row) throw new AppError('not_found', { detail: 'There is no client with that id.' });
    if (row.type === 'public') throw validationFailed([{ field: 'client_id', message: 'a public client has no secret' }]);
    const secret = newSecret();
    await setClientSecret(this.db, clientId, hashSecret(secret), this.#now());
    return { ...toClientView(row), client_secret: secret };
  }

  async deleteClient(clientId: string): Promise<void> {
    const ids = await sessionsOfClient(this.db, clientId);
    if (!(await deleteClient(this.db, clientId))) throw new AppError('not_found', { detail: 'There is no client with that id.' });
    // Its sessions end with it: the rows stay (audit), the tokens stop working.
    for (const { session_id, user_id } of ids) await this.revocation.endNow(this.db, { userId: String(user_id), sessionId: String(session_id) }, 'revoked');
  }

}
