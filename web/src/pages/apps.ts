import { auth, call, forget, type Answer } from '../api.js';
import { moment } from '../dates.js';
import { announce, h } from '../dom.js';
import { navigate, type Page } from '../router.js';

// The service as an OpenID Provider (API-FEDERATION.md B): the page an app's sign-in comes to
// (sign in, then consent when the app is not ours), and "Connected apps" (the consents, withdrawn here).

type Pending = Answer<'/v1/authorization-requests/{id}', 'get', 200>;
type Grant = Answer<'/v1/users/me/grants', 'get', 200>['grants'][number];

/** Where to go after signing in, when a page sent the person to sign in first (an app's sign-in). */
const RETURN_KEY = 'return_after_sign_in';

/** The page to go to once signed in, if one asked (used once). Only a path of this app. */
export function takeReturn(): string | undefined {
  const to = sessionStorage.getItem(RETURN_KEY) ?? undefined;
  sessionStorage.removeItem(RETURN_KEY);
  return to?.startsWith('/') && !to.startsWith('//') ? to : undefined;
}

/** The pending return without using it (the provider buttons carry it through the redirect). */
export function pendingReturn(): string | undefined {
  const to = sessionStorage.getItem(RETURN_KEY) ?? undefined;
  return to?.startsWith('/') && !to.startsWith('//') ? to : undefined;
}

function heading(text: string): HTMLHeadingElement {
  return h('h1', { tabindex: -1 }, text);
}

/** What a scope lets the app do, in words. */
const SCOPE_WORDS: Record<string, string> = {
  openid: 'Know who you are (your account id)',
  profile: 'See your name, username and date of birth',
  email: 'See your email address',
  offline_access: 'Stay signed in when you are not using it',
};

export const authorizeAppPage: Page = {
  title: 'Continue to the app',
  async render(params) {
    const id = params.get('request') ?? '';
    const here = `/authorize-app?request=${encodeURIComponent(id)}`;
    const signInFirst = (message: string): Node[] => {
      sessionStorage.setItem(RETURN_KEY, here);
      navigate('/sign-in', message);
      return [];
    };
    if (!auth.signedIn) return signInFirst('Sign in to continue to the app.');
    sessionStorage.removeItem(RETURN_KEY); // back here: the return is used
    let pending: Pending;
    try {
      pending = await call<Pending>('GET', `/v1/authorization-requests/${encodeURIComponent(id)}`);
    } catch {
      return [heading('This sign-in has expired'), h('p', { class: 'error', role: 'alert' }, 'Go back to the app and start signing in again.')];
    }
    if (pending.login_required) {
      // The app asks for a fresh sign-in (prompt=login, max_age): this tab signs in again.
      forget();
      return signInFirst(`${pending.client.name} asks you to sign in again.`);
    }
    const answer = async (decision: 'allow' | 'deny') => {
      const { redirect_to } = await call<{ redirect_to: string }>('POST', `/v1/authorization-requests/${encodeURIComponent(id)}`, { decision });
      location.assign(redirect_to);
    };
    if (!pending.consent_required) {
      await answer('allow');
      return [heading(`Signing you in to ${pending.client.name}…`)];
    }
    const button = (text: string, decision: 'allow' | 'deny', cls: string) =>
      h('button', {
        type: 'button',
        class: cls,
        onclick: async () => {
          try {
            await answer(decision);
          } catch {
            announce('That did not work. Go back to the app and try again.');
          }
        },
      }, text);
    return [
      heading(`${pending.client.name} wants to use your account`),
      h('p', {}, `Signed in as ${auth.user?.username ?? 'you'}. ${pending.client.name} will be able to:`),
      h('ul', { class: 'scopes' }, ...pending.scopes.map((s) => h('li', {}, SCOPE_WORDS[s] ?? `Use ${s}`))),
      h('p', {}, 'You can withdraw this at any time under Connected apps.'),
      h('div', { class: 'card' }, button('Allow', 'allow', 'primary'), button('Cancel', 'deny', 'secondary')),
    ];
  },
};

export const connectedAppsPage: Page = {
  title: 'Connected apps',
  protected: true,
  async render() {
    const { grants } = await call<{ grants: Grant[] }>('GET', '/v1/users/me/grants');
    if (grants.length === 0) return [heading('Connected apps'), h('p', {}, 'You have not allowed any app to use your account.')];
    const list = h('ul', { class: 'sessions' });
    for (const g of grants) {
      const item = h(
        'li',
        { class: 'card', 'data-client-id': g.client_id },
        h('strong', {}, g.name),
        h('span', {}, `Can: ${g.scopes.join(', ')}`),
        h('span', {}, `Allowed: ${moment(g.created_at)}`),
      );
      item.append(
        h('button', {
          type: 'button',
          class: 'secondary',
          'aria-label': `Withdraw ${g.name}`,
          onclick: async () => {
            try {
              await call('DELETE', `/v1/users/me/grants/${encodeURIComponent(g.client_id)}`);
            } catch {
              announce('Withdrawing failed. Try again.');
              return;
            }
            item.remove();
            announce(`${g.name} can no longer use your account.`);
            document.querySelector<HTMLElement>('main h1')?.focus();
          },
        }, 'Withdraw'),
      );
      list.append(item);
    }
    return [heading('Connected apps'), list];
  },
};
