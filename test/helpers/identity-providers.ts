import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

/**
 * Real identity providers for the federation tests, on 127.0.0.1: an OpenID Provider
 * (oidc-provider by panva, with its own login interaction, driven over HTTP with cookies) and a
 * small GitHub-style OAuth 2.0 server. The person signing in and what the provider says about
 * them (email, email_verified) are set per test.
 */

export interface UpstreamPerson {
  email?: string;
  email_verified?: boolean;
  name?: string;
  preferred_username?: string;
}

const listen = async (server: Server): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

/** A cookie jar for one "browser" at the provider. */
export class Browser {
  readonly cookies = new Map<string, string>();

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  take(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async get(url: string): Promise<Response> {
    const response = await fetch(url, { redirect: 'manual', headers: { cookie: this.header() } });
    this.take(response);
    return response;
  }

  async postForm(url: string, form: Record<string, string>): Promise<Response> {
    const response = await fetch(url, { method: 'POST', redirect: 'manual', body: new URLSearchParams(form), headers: { cookie: this.header() } });
    this.take(response);
    return response;
  }
}

export interface OpenIdProviderForTests {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who is who at the provider: account id → claims. */
  people: Map<string, UpstreamPerson>;
  /** While true, tokens are signed by a key that is not in the provider's published JWKS. */
  signWithForeignKey: boolean;
  /**
   * A person signs in at the provider with the authorization URL the service redirected to: answers
   * the URL the provider sends the browser back to (the service's callback, with code and state).
   */
  signIn(authorizationUrl: string, accountId: string): Promise<URL>;
  /**
   * The same with `response_mode=form_post`: the provider answers a page whose form the browser
   * posts to the service; answers that form's target and fields.
   */
  signInFormPost(authorizationUrl: string, accountId: string): Promise<{ action: URL; fields: Record<string, string> }>;
  /** The person refuses at the provider (abort): the callback URL carries error=access_denied. */
  refuse(authorizationUrl: string): Promise<URL>;
  close(): Promise<void>;
}

const privateJwk = () => ({ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: randomBytes(6).toString('hex'), use: 'sig', alg: 'RS256' });

export async function startOpenIdProvider(redirectUris: string[]): Promise<OpenIdProviderForTests> {
  const people = new Map<string, UpstreamPerson>();
  const server = createServer();
  const issuer = await listen(server);
  const clientId = 'ums-test';
  const clientSecret = randomBytes(16).toString('hex');
  const configuration = (key: object) => ({
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris, token_endpoint_auth_method: 'client_secret_basic' }],
    jwks: { keys: [key] },
    cookies: { keys: ['test-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    pkce: { required: () => true },
    findAccount: async (_ctx: unknown, id: string) => {
      const person = people.get(id);
      return person && { accountId: id, claims: async () => ({ sub: id, ...person }) };
    },
    // No consent page: every scope asked for is granted (the tests are about the relying party).
    loadExistingGrant: async (ctx: any) => {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
  });
  const quiet = console.warn;
  console.warn = () => {}; // oidc-provider's development-mode notices
  const good = new Provider(issuer, configuration(privateJwk()));
  const foreign = new Provider(issuer, configuration(privateJwk()));
  console.warn = quiet;
  const state = { signWithForeignKey: false };
  const goodHandler = good.callback();
  const foreignHandler = foreign.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // The published keys are always the good provider's.
    const useForeign = state.signWithForeignKey && !req.url?.startsWith('/jwks');
    (useForeign ? foreignHandler : goodHandler)(req, res);
  });

  const toCallback = async (browser: Browser, response: Response): Promise<URL> => {
    for (let hops = 0; hops < 10; hops++) {
      const location = response.headers.get('location');
      if (!location) throw new Error(`the provider answered ${response.status} without a redirect: ${await response.text()}`);
      const next = new URL(location, issuer);
      if (next.origin !== issuer) return next;
      if (next.pathname.startsWith('/interaction/')) return next;
      response = await browser.get(next.href);
    }
    throw new Error('too many redirects at the provider');
  };

  const provider: OpenIdProviderForTests = {
    issuer,
    clientId,
    clientSecret,
    people,
    get signWithForeignKey() {
      return state.signWithForeignKey;
    },
    set signWithForeignKey(value: boolean) {
      state.signWithForeignKey = value;
    },
    async signIn(authorizationUrl, accountId) {
      const browser = new Browser();
      const interaction = await toCallback(browser, await browser.get(authorizationUrl));
      if (!interaction.pathname.startsWith('/interaction/')) return interaction;
      await browser.get(interaction.href); // the provider's login page
      return toCallback(browser, await browser.postForm(interaction.href, { prompt: 'login', login: accountId, password: 'any' }));
    },
    async signInFormPost(authorizationUrl, accountId) {
      const browser = new Browser();
      let response = await browser.get(authorizationUrl);
      for (let hops = 0; hops < 10 && response.status !== 200; hops++) {
        const next = new URL(response.headers.get('location')!, issuer);
        if (next.pathname.startsWith('/interaction/')) {
          await browser.get(next.href); // the provider's login page
          response = await browser.postForm(next.href, { prompt: 'login', login: accountId, password: 'any' });
        } else response = await browser.get(next.href);
      }
      const page = await response.text();
      const action = /<form[^>]*action="([^"]+)"/.exec(page)?.[1];
      if (!action) throw new Error(`the provider answered no form_post page: ${page.slice(0, 200)}`);
      const fields = Object.fromEntries([...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      return { action: new URL(action.replace(/&amp;/g, '&')), fields };
    },
    async refuse(authorizationUrl) {
      const browser = new Browser();
      const interaction = await toCallback(browser, await browser.get(authorizationUrl));
      return toCallback(browser, await browser.get(`${interaction.href}/abort`));
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return provider;
}

export interface GitHubForTests {
  /** The base URL, as IDP_GITHUB_ISSUER (a GitHub Enterprise server's layout). */
  url: string;
  clientId: string;
  clientSecret: string;
  /** The account of whoever signs in next, and its emails. */
  user: { id: number; login: string; name: string | null };
  emails: Array<{ email: string; verified: boolean; primary: boolean }>;
  /** Follows the authorization URL as an approving user: answers the callback URL. */
  signIn(authorizationUrl: string): Promise<URL>;
  close(): Promise<void>;
}

export async function startGitHub(): Promise<GitHubForTests> {
  const codes = new Map<string, { challenge: string; redirectUri: string; user: GitHubForTests['user']; emails: GitHubForTests['emails'] }>();
  const tokens = new Map<string, { user: GitHubForTests['user']; emails: GitHubForTests['emails'] }>();
  const clientId = 'gh-test';
  const clientSecret = randomBytes(16).toString('hex');
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== clientId || q.get('code_challenge_method') !== 'S256') return json(res, 400, { error: 'bad request' });
      const code = randomBytes(10).toString('hex');
      codes.set(code, { challenge: q.get('code_challenge')!, redirectUri: q.get('redirect_uri')!, user: { ...gh.user }, emails: [...gh.emails] });
      const back = new URL(q.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state')!);
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      // client_secret_basic: each part form-urlencoded, then base64 (RFC 6749 §2.3.1).
      const [id, secret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':').map((p) => decodeURIComponent(p.replace(/\+/g, ' ')));
      if (id !== clientId || secret !== clientSecret) return json(res, 401, { error: 'invalid_client' });
      const grant = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      if (!grant || grant.redirectUri !== form.get('redirect_uri') || createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) {
        return json(res, 400, { error: 'invalid_grant' });
      }
      const token = randomBytes(16).toString('hex');
      tokens.set(token, { user: grant.user, emails: grant.emails });
      return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
    }
    const who = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /i, ''));
    if (req.method === 'GET' && url.pathname === '/api/v3/user') return who ? json(res, 200, who.user) : json(res, 401, { message: 'Bad credentials' });
    if (req.method === 'GET' && url.pathname === '/api/v3/user/emails') return who ? json(res, 200, who.emails) : json(res, 401, { message: 'Bad credentials' });
    json(res, 404, { message: 'Not Found' });
  });
  const url = await listen(server);
  const gh: GitHubForTests = {
    url,
    clientId,
    clientSecret,
    user: { id: 1, login: 'octo', name: 'Octo Cat' },
    emails: [],
    async signIn(authorizationUrl) {
      const response = await fetch(authorizationUrl, { redirect: 'manual' });
      const location = response.headers.get('location');
      if (!location) throw new Error(`GitHub answered ${response.status}`);
      return new URL(location);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return gh;
}

/** The settings that configure the service for these test providers, as `corp` (OpenID, label "Corp SSO") and `github`. */
export function providerSettings(op: OpenIdProviderForTests, gh: GitHubForTests): Record<string, string> {
  return {
    IDP_CORP_CLIENT_ID: op.clientId,
    IDP_CORP_CLIENT_SECRET: op.clientSecret,
    IDP_CORP_ISSUER: op.issuer,
    IDP_CORP_LABEL: 'Corp SSO',
    IDP_GITHUB_CLIENT_ID: gh.clientId,
    IDP_GITHUB_CLIENT_SECRET: gh.clientSecret,
    IDP_GITHUB_ISSUER: gh.url,
  };
}
