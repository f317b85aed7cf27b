import { pendingReturn } from './apps.js';
import { call, expectSignIn, publicCall, refresh, type Answer } from '../api.js';
import { announce, field, formValues, h } from '../dom.js';
import { onSubmit, submit } from '../forms.js';
import { moment } from '../dates.js';
import { navigate, type Page } from '../router.js';

// Sign in with another provider (API-FEDERATION.md A): the buttons, the messages of the callback's
// error= codes, /complete-sign-up, and the linked accounts of the security page.

type Providers = Answer<'/v1/identity-providers', 'get', 200>['providers'];
type Identity = Answer<'/v1/users/me/identities', 'get', 200>['identities'][number];
type PendingSignUp = Answer<'/v1/oauth/sign-up', 'get', 200>;

let providers: Promise<Providers> | undefined;
function listProviders(): Promise<Providers> {
  providers ??= publicCall<{ providers: Providers }>('GET', '/v1/identity-providers')
    .then((r) => r.providers)
    .catch(() => {
      providers = undefined;
      return [];
    });
  return providers;
}

/** What each `error=` of the callback means to the person. */
const CALLBACK_MESSAGES: Record<string, string> = {
  invalid_state: 'That sign-in took too long or was started in another browser. Try again.',
  provider_error: 'The provider did not sign you in (you may have cancelled). Try again.',
  invalid_response: 'The provider’s answer could not be checked, so nobody was signed in. Try again.',
  account_exists:
    'An account with this email already exists. Sign in with your password or passkey, then link the provider from the Security page.',
  email_required: 'The provider did not share a verified email address, which an account needs. Use another way to sign up.',
  identity_in_use: 'That provider account is already linked to another account here.',
  invalid_credentials: 'This account cannot sign in.',
  email_not_verified: 'Verify your email address first: follow the link in the mail we sent.',
  too_many_requests: 'Too many sign-in attempts. Wait a little and try again.',
};

/** The message for an `error=` the callback sent back, if the page carries one. */
export function callbackError(params: URLSearchParams): HTMLElement | null {
  const code = params.get('error');
  if (!code) return null;
  const message = CALLBACK_MESSAGES[code] ?? 'Signing in with the provider did not work. Try again.';
  announce(message);
  return h('p', { class: 'error', role: 'alert', id: 'callback-error' }, message);
}

/** "Continue with …" buttons: plain links, the browser goes to the provider and comes back signed in. */
export async function providerButtons(verb: 'Sign in' | 'Sign up'): Promise<HTMLElement | null> {
  const list = await listProviders();
  if (list.length === 0) return null;
  const links = list.map((p) =>
    h('a', { class: 'button secondary provider', href: `/v1/oauth/${encodeURIComponent(p.name)}/authorize?return_to=${encodeURIComponent(pendingReturn() ?? '/profile')}`, onclick: () => expectSignIn() }, `${verb} with ${p.label}`),
  );
  return h('section', { class: 'card providers', 'aria-label': `${verb} with another account` }, ...links);
}

/** The second step after a provider, for a user with TOTP on: the callback put the mfa_token in the fragment. */
export function mfaFromFragment(): { mfaToken: string; returnTo: string } | undefined {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const mfaToken = fragment.get('mfa_token');
  if (!mfaToken) return undefined;
  history.replaceState(null, '', location.pathname + location.search); // out of the address bar and history
  return { mfaToken, returnTo: fragment.get('return_to') ?? '/profile' };
}

const USERNAME = { minlength: 3, maxlength: 32, pattern: '[A-Za-z0-9_.\\-]{3,32}', autocomplete: 'username', hint: '3–32 letters, digits, “_”, “.” or “-”.' };

export const completeSignUpPage: Page = {
  title: 'Finish creating your account',
  guestOnly: true,
  async render() {
    let pending: PendingSignUp;
    try {
      pending = await publicCall<PendingSignUp>('GET', '/v1/oauth/sign-up');
    } catch {
      return [h('h1', { tabindex: -1 }, 'Finish creating your account'), h('p', { class: 'error', role: 'alert' }, 'No sign-up is waiting in this browser. Sign up with the provider again.'), h('p', {}, h('a', { href: '/sign-up' }, 'Create an account'))];
    }
    const today = new Date().toISOString().slice(0, 10);
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'page-title' },
      h('p', {}, `Signed in as ${pending.email}${pending.email_verified ? '' : ' (not verified yet: we will send a link)'}.`),
      field({ name: 'username', label: 'Username', value: pending.username ?? '', ...USERNAME }),
      field({ name: 'dob', label: 'Date of birth', type: 'date', max: today }),
      submit('Create account'),
    );
    onSubmit(form, async () => {
      const { return_to } = await publicCall<{ return_to: string }>('POST', '/v1/oauth/sign-up', formValues(form));
      expectSignIn();
      await refresh();
      announce('Your account is ready.');
      navigate(return_to);
    });
    return [h('h1', { tabindex: -1 }, 'Finish creating your account'), form];
  },
};

/** The security page's card: linked accounts, unlink (never the last way in), link another. */
export async function linkedAccountsSection(refreshPage: (focus?: string) => Promise<void>): Promise<HTMLElement | null> {
  const [list, { identities }] = await Promise.all([listProviders(), call<{ identities: Identity[] }>('GET', '/v1/users/me/identities')]);
  if (list.length === 0 && identities.length === 0) return null;
  const label = (name: string) => list.find((p) => p.name === name)?.label ?? name;
  const card = h('section', { class: 'card', 'aria-labelledby': 'identities-title' }, h('h2', { id: 'identities-title', tabindex: -1 }, 'Linked accounts'));
  const status = h('p', { class: 'error', role: 'alert' });
  const items = h('ul', { class: 'identities' });
  for (const identity of identities) {
    items.append(
      h(
        'li',
        { 'data-identity-id': identity.id },
        h('strong', {}, label(identity.provider)),
        h('span', {}, ` ${identity.email ?? ''} · linked ${moment(identity.created_at)}`),
        h('button', {
          type: 'button',
          class: 'secondary',
          'aria-label': `Unlink ${label(identity.provider)}`,
          onclick: async () => {
            status.textContent = '';
            try {
              await call('DELETE', `/v1/users/me/identities/${identity.id}`);
            } catch (err) {
              const code = (err as { problem?: { code?: string; detail?: string } }).problem;
              status.textContent = code?.code === 'last_sign_in_method' ? 'This is your last way to sign in: set a password or add a passkey first.' : code?.detail ?? 'Unlinking failed. Try again.';
              announce(status.textContent);
              return;
            }
            announce(`${label(identity.provider)} unlinked.`);
            await refreshPage('#identities-title');
          },
        }, 'Unlink'),
      ),
    );
  }
  card.append(identities.length ? items : h('p', {}, 'No account from another provider is linked.'), status);
  for (const p of list) {
    card.append(
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          status.textContent = '';
          try {
            const { authorize_url } = await call<{ authorize_url: string }>('POST', `/v1/users/me/identities/${encodeURIComponent(p.name)}`);
            location.assign(authorize_url);
          } catch (err) {
            const problem = (err as { problem?: { code?: string; detail?: string } }).problem;
            status.textContent = problem?.code === 'reauthentication_required' ? 'Sign in again first: linking needs a sign-in in the last 15 minutes.' : problem?.detail ?? 'Linking failed. Try again.';
            announce(status.textContent);
          }
        },
      }, `Link ${p.label}`),
    );
  }
  return card;
}

/**
 * A user who signed up with another provider may have no password: the password field of a
 * re-authentication is then left empty, and the server asks for a sign-in in the last 15 minutes
 * instead. An empty field is not sent (an empty password would be a wrong one).
 */
export const NO_PASSWORD_HINT = 'No password yet (you sign in with another provider)? Leave it empty; it works within 15 minutes of signing in.';
export function withoutEmptyPassword(values: Record<string, string>): Record<string, string> {
  const { current_password, ...rest } = values;
  return current_password ? { current_password, ...rest } : rest;
}
