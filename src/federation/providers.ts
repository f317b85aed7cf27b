import * as oidc from 'openid-client';
import type { FastifyBaseLogger } from 'fastify';
import type { IdentityProviderSetting } from '../config.js';

/** The issuers of the OpenID presets (their discovery documents say the rest). */
const OPENID_PRESETS: Record<string, string> = {
  google: 'https://accounts.google.com',
  // The multi-tenant endpoint: Entra's `email` claim is not vouched for (the "nOAuth" problem), so
  // it never links by itself (see claimsOf: only `email_verified: true` counts).
  microsoft: 'https://login.microsoftonline.com/common/v2.0',
  apple: 'https://appleid.apple.com',
  gitlab: 'https://gitlab.com',
};

/** What a provider told us about the person, once its answer checked out. */
export interface UpstreamAccount {
  subject: string;
  email: string | undefined;
  /** The provider vouches for the email (OpenID `email_verified: true`; a verified GitHub email). */
  emailVerified: boolean;
  name: string | undefined;
  /** A username to suggest (OpenID `preferred_username` or `nickname`, GitHub's login). */
  username: string | undefined;
}

/** The checks a callback must pass, as stored when the flow started. */
export interface FlowChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** A configured provider, ready to start flows and check their answers. */
export interface IdentityProvider {
  readonly name: string;
  readonly label: string;
  authorizationUrl(redirectUri: string, checks: FlowChecks & { codeChallenge: string }): URL;
  /** Trades the code of `callbackUrl` for the account; throws when any check fails. */
  account(callbackUrl: URL, checks: FlowChecks): Promise<UpstreamAccount>;
}

/** Plain http is allowed only for loopback issuers (config.ts refuses any other). */
function allowLoopbackHttp(config: oidc.Configuration, issuer: URL): void {
  if (issuer.protocol === 'http:') oidc.allowInsecureRequests(config);
}

const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

/** The authorization request both kinds send: state, PKCE S256, and a nonce where OpenID has one. */
abstract class Provider implements IdentityProvider {
  protected abstract readonly openId: boolean;

  constructor(
    readonly name: string,
    readonly label: string,
    protected readonly config: oidc.Configuration,
    protected readonly scopes: string,
    /** How the provider must answer: Apple requires form_post when `name` or `email` is asked for. */
    private readonly responseMode?: 'form_post',
  ) {}

  authorizationUrl(redirectUri: string, checks: FlowChecks & { codeChallenge: string }): URL {
    return oidc.buildAuthorizationUrl(this.config, {
      redirect_uri: redirectUri,
      scope: this.scopes,
      ...(this.responseMode ? { response_mode: this.responseMode } : {}),
      state: checks.state,
      ...(this.openId ? { nonce: checks.nonce } : {}),
      code_challenge: checks.codeChallenge,
      code_challenge_method: 'S256',
    });
  }

  abstract account(callbackUrl: URL, checks: FlowChecks): Promise<UpstreamAccount>;
}

class OpenIdProvider extends Provider {
  protected readonly openId = true;

  async account(callbackUrl: URL, checks: FlowChecks): Promise<UpstreamAccount> {
    // openid-client checks the state, the issuer's answer, the ID token (signature against the
    // provider's JWKS, iss, aud, exp, iat, nonce) and PKCE; nothing here re-does it by hand.
    const tokens = await oidc.authorizationCodeGrant(this.config, callbackUrl, {
      pkceCodeVerifier: checks.codeVerifier,
      expectedState: checks.state,
      expectedNonce: checks.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (!claims) throw new Error('no ID token');
    let info: Record<string, unknown> = {};
    // Many providers put `email` only in userinfo; it must be about the same subject.
    if (this.config.serverMetadata().userinfo_endpoint && (claims.email === undefined || claims.email_verified === undefined)) {
      info = await oidc.fetchUserInfo(this.config, tokens.access_token, claims.sub);
    }
    const pick = (key: string) => (claims[key] !== undefined ? claims[key] : info[key]);
    const email = str(pick('email'));
    return {
      subject: claims.sub,
      email,
      // Only a literal true vouches; Apple sends the string "true".
      emailVerified: email !== undefined && (pick('email_verified') === true || pick('email_verified') === 'true'),
      name: str(pick('name')) ?? appleName(callbackUrl),
      username: str(pick('preferred_username')) ?? str(pick('nickname')),
    };
  }
}

/**
 * Apple puts no name in its ID token: it posts a `user` field along with the code, the first
 * time a person authorizes the app only. Unsigned, so it is used as a suggestion for the new
 * account's name and never for anything that decides who signs in.
 */
function appleName(callbackUrl: URL): string | undefined {
  const user = callbackUrl.searchParams.get('user');
  if (user === null) return undefined;
  try {
    const name = (JSON.parse(user) as { name?: { firstName?: unknown; lastName?: unknown } }).name;
    const full = [str(name?.firstName), str(name?.lastName)].filter(Boolean).join(' ');
    return full.length > 0 && full.length <= 100 ? full : undefined;
  } catch {
    return undefined;
  }
}

/** GitHub: OAuth 2.0 without OpenID; the account from its user and emails API. */
class GitHubProvider extends Provider {
  protected readonly openId = false;

  constructor(name: string, label: string, config: oidc.Configuration, scopes: string, private readonly api: string) {
    super(name, label, config, scopes);
  }

  async account(callbackUrl: URL, checks: FlowChecks): Promise<UpstreamAccount> {
    const tokens = await oidc.authorizationCodeGrant(this.config, callbackUrl, { pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state });
    const get = async (path: string) => {
      const headers = new Headers({ accept: 'application/vnd.github+json' });
      const response = await oidc.fetchProtectedResource(this.config, tokens.access_token, new URL(`${this.api}${path}`), 'GET', undefined, headers);
      if (!response.ok) throw new Error(`GitHub API ${path}: ${response.status}`);
      return (await response.json()) as unknown;
    };
    const user = (await get('/user')) as { id?: unknown; login?: unknown; name?: unknown };
    if (typeof user.id !== 'number' && typeof user.id !== 'string') throw new Error('GitHub API /user: no id');
    const emails = (await get('/user/emails')) as Array<{ email?: unknown; verified?: unknown; primary?: unknown }>;
    const verified = Array.isArray(emails) ? emails.filter((e) => e.verified === true && typeof e.email === 'string') : [];
    // The primary address when it is verified, else any verified one; an unverified address is never used.
    const chosen = verified.find((e) => e.primary === true) ?? verified[0];
    return { subject: String(user.id), email: chosen?.email as string | undefined, emailVerified: chosen !== undefined, name: str(user.name), username: str(user.login) };
  }
}

async function build(setting: IdentityProviderSetting): Promise<IdentityProvider> {
  const auth = oidc.ClientSecretBasic(setting.clientSecret);
  if (setting.name === 'github') {
    // github.com, or a GitHub Enterprise server at IDP_GITHUB_ISSUER.
    const base = new URL(setting.issuer ?? 'https://github.com');
    const enterprise = setting.issuer !== undefined;
    const root = base.href.replace(/\/$/, '');
    const config = new oidc.Configuration(
      { issuer: root, authorization_endpoint: `${root}/login/oauth/authorize`, token_endpoint: `${root}/login/oauth/access_token` },
      setting.clientId,
      setting.clientSecret,
      auth,
    );
    allowLoopbackHttp(config, base);
    return new GitHubProvider(setting.name, setting.label, config, setting.scopes, enterprise ? `${root}/api/v3` : 'https://api.github.com');
  }
  const issuer = new URL(setting.issuer ?? OPENID_PRESETS[setting.name]!);
  const config = await oidc.discovery(issuer, setting.clientId, setting.clientSecret, undefined, issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {});
  const methods = config.serverMetadata().token_endpoint_auth_methods_supported;
  // client_secret_basic, or client_secret_post only where the provider offers nothing else (API-FEDERATION.md A).
  const clientAuth = methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post') ? oidc.ClientSecretPost(setting.clientSecret) : auth;
  const configured = new oidc.Configuration(config.serverMetadata(), setting.clientId, setting.clientSecret, clientAuth);
  allowLoopbackHttp(configured, issuer);
  // The ID token's signature is checked against the provider's JWKS too (oauth4webapi skips it by
  // default for a token endpoint answer over TLS, OpenID Core 3.1.3.7 item 6): a token signed by any
  // other key is refused.
  oidc.enableNonRepudiationChecks(configured);
  return new OpenIdProvider(setting.name, setting.label, configured, setting.scopes, setting.name === 'apple' ? 'form_post' : undefined);
}

/**
 * The providers of IDENTITY_PROVIDERS, discovered at start. One whose discovery fails is logged
 * and left out; the service starts anyway (API-FEDERATION.md A).
 */
export async function loadProviders(settings: readonly IdentityProviderSetting[], log: FastifyBaseLogger): Promise<Map<string, IdentityProvider>> {
  const providers = new Map<string, IdentityProvider>();
  const built = await Promise.allSettled(settings.map(build));
  built.forEach((result, i) => {
    const name = settings[i]!.name;
    if (result.status === 'fulfilled') providers.set(name, result.value);
    else log.error({ provider: name, reason: result.reason instanceof Error ? result.reason.message : String(result.reason) }, 'identity provider left out: its discovery failed');
  });
  return providers;
}
