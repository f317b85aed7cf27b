import { takeReturn } from './apps.js';
import { ApiError, auth, call, forget, publicCall, setUser, signIn, type SessionInfo, type User } from '../api.js';
import { signInWithPasskey } from './security.js';
import { announce, field, formValues, h } from '../dom.js';
import { dobLimits, EMAIL, NAME, newPasswordField, onSubmit, submit, USERNAME } from '../forms.js';
import { calendarDate, dayOf, moment } from '../dates.js';
import { refusePasskeysElsewhere } from '../public-url.js';
import { navigate, type Page } from '../router.js';
import { callbackError, mfaFromFragment, NO_PASSWORD_HINT, providerButtons, withoutEmptyPassword } from './federation.js';

function heading(text: string): HTMLHeadingElement {
  return h('h1', { tabindex: -1 }, text);
}

export const signUpPage: Page = {
  title: 'Create an account',
  guestOnly: true,
  async render() {
    const password = await newPasswordField('password', 'Password');
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'page-title' },
      field({ name: 'username', label: 'Username', ...USERNAME }),
      field({ name: 'name', label: 'Full name', ...NAME }),
      field({ name: 'dob', label: 'Date of birth', type: 'date', ...dobLimits() }),
      field({ name: 'email', label: 'Email', ...EMAIL }),
      ...password,
      submit('Create account'),
    );
    onSubmit(form, async () => {
      const values = formValues(form);
      await publicCall('POST', '/v1/users', values);
      await signIn('/v1/sessions', { username: values.username, password: values.password });
      announce('Your account is ready.');
      navigate('/profile');
    });
    const providers = await providerButtons('Sign up');
    return [heading('Create an account'), ...(providers ? [providers] : []), form, h('p', {}, 'Have an account? ', h('a', { href: '/sign-in' }, 'Sign in'))];
  },
};

export const signInPage: Page = {
  title: 'Sign in',
  guestOnly: true,
  async render(params) {
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'page-title' },
      field({ name: 'login', label: 'Username or email', autocomplete: 'username webauthn', maxlength: 254 }),
      field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password', maxlength: 4096, minlength: 1 }),
      submit('Sign in'),
    );
    const container = h('div', {}, form);
    onSubmit(form, async () => {
      const { login, password } = formValues(form);
      const by = login!.includes('@') ? 'email' : 'username';
      try {
        await signIn('/v1/sessions', { [by]: login, password });
      } catch (err) {
        if (err instanceof ApiError && err.problem.code === 'mfa_required') {
          container.replaceChildren(secondStep(String(err.problem.mfa_token)));
          return;
        }
        throw err;
      }
      signedInNow();
    });
    const passkeyForm = h('form', { class: 'card', 'aria-label': 'Sign in with a passkey' }, h('p', {}, 'Or use a passkey: Touch ID, Windows Hello, a security key or your phone.'), h('button', { type: 'submit', class: 'secondary' }, 'Sign in with a passkey'));
    onSubmit(passkeyForm, async () => {
      if (refusePasskeysElsewhere(passkeyForm)) return;
      await signInWithPasskey();
      signedInNow();
    });
    // After a provider, with TOTP on: the code is asked here (the token came in the fragment).
    const afterProvider = mfaFromFragment();
    if (afterProvider) container.replaceChildren(secondStep(afterProvider.mfaToken, afterProvider.returnTo));
    const providers = await providerButtons('Sign in');
    const error = callbackError(params);
    return [
      heading('Sign in'),
      ...(error ? [error] : []),
      container,
      ...(providers ? [providers] : []),
      passkeyForm,
      h('p', {}, h('a', { href: '/forgot-password' }, 'Forgot your password?')),
      h('p', {}, 'New here? ', h('a', { href: '/sign-up' }, 'Create an account')),
    ];
  },
};

function signedInNow(to = '/profile'): void {
  announce('Signed in.');
  // An app's sign-in sent the person here first (pages/apps.ts): back to it.
  navigate(takeReturn() ?? to);
}

/** The second step of a sign-in with TOTP on: a code from the app, or a recovery code. */
function secondStep(mfaToken: string, returnTo?: string): HTMLFormElement {
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'mfa-title' },
    h('h2', { id: 'mfa-title', tabindex: -1 }, 'Two-step verification'),
    field({ name: 'code', label: 'Code', autocomplete: 'one-time-code', maxlength: 32, hint: 'The 6 digits from your authenticator app, or one of your recovery codes.' }),
    submit('Verify'),
  );
  onSubmit(form, async () => {
    await signIn('/v1/sessions/mfa', { mfa_token: mfaToken, code: formValues(form).code!.trim() });
    signedInNow(returnTo);
  });
  setTimeout(() => form.querySelector('input')?.focus(), 0);
  announce('Enter the code from your authenticator app.');
  return form;
}

function profileDetails(user: User): HTMLElement {
  const row = (label: string, value: string) => [h('dt', {}, label), h('dd', {}, value)];
  return h(
    'dl',
    { id: 'profile' },
    ...row('Username', user.username),
    ...row('Name', user.name),
    ...row('Date of birth', user.dob === null ? 'Not given yet' : calendarDate(user.dob)),
    ...row('Email', user.email),
    ...(user.email_verified === undefined ? [] : row('Email verified', user.email_verified ? 'Yes' : 'Not yet')),
    ...row('Member since', dayOf(user.created_at)),
  );
}

export const profilePage: Page = {
  title: 'My profile',
  protected: true,
  async render() {
    const user = await call<User>('GET', '/v1/users/me');
    setUser(user);
    const details = h('section', { class: 'card', 'aria-label': 'Profile' }, profileDetails(user));
    const status = h('p', { class: 'ok', role: 'status' });
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'edit-title' },
      h('h2', { id: 'edit-title' }, 'Edit profile'),
      field({ name: 'username', label: 'Username', value: user.username, ...USERNAME }),
      field({ name: 'name', label: 'Full name', value: user.name, ...NAME }),
      field({ name: 'dob', label: 'Date of birth', type: 'date', value: user.dob ?? undefined, required: user.dob !== null, ...dobLimits() }),
      field({ name: 'email', label: 'Email', value: user.email, ...EMAIL }),
      // API.md: a new email needs proof of presence, a sign-in in the last 15 minutes or the password.
      field({ name: 'current_password', id: 'f-email-current_password', label: 'Current password', type: 'password', autocomplete: 'current-password', maxlength: 4096, required: false, hint: 'Asked for a new email address, unless you signed in during the last 15 minutes.' }),
      submit('Save changes'),
      status,
    );
    onSubmit(form, async () => {
      status.textContent = '';
      const current = auth.user!;
      const { current_password: password, ...values } = formValues(form);
      // A date of birth never given stays so while its field is left empty.
      const changed: Record<string, string> = Object.fromEntries(Object.entries(values).filter(([k, v]) => current[k as keyof User] !== v && !(k === 'dob' && v === '' && current.dob === null)));
      if (Object.keys(changed).length === 0) {
        status.textContent = 'Nothing to save: no field changed.';
        return;
      }
      // The password goes only with a new email: alone, or with other fields, it is not asked for.
      if ('email' in changed && password) changed.current_password = password;
      const updated = await call<User>('PATCH', '/v1/users/me', changed);
      (form.elements.namedItem('current_password') as HTMLInputElement).value = '';
      setUser(updated);
      details.replaceChildren(profileDetails(updated));
      status.textContent = 'Saved.';
    });
    const askDob = user.dob === null ? [missingDob((updated) => details.replaceChildren(profileDetails(updated)))] : [];
    return [heading('My profile'), ...askDob, details, ...(user.email_verified === false ? [resendVerification()] : []), form, downloadMyData(), deleteAccount()];
  },
};

/**
 * A user brought in from another service may have no date of birth (API-MIGRATION.md): asked
 * for here, the first page after every sign-in, until it is given.
 */
function missingDob(saved: (user: User) => void): HTMLElement {
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'dob-title' },
    h('h2', { id: 'dob-title' }, 'Add your date of birth'),
    h('p', {}, 'Your account came from another service without it.'),
    field({ name: 'dob', id: 'f-missing-dob', label: 'Your date of birth', type: 'date', ...dobLimits() }),
    submit('Save date of birth'),
  );
  onSubmit(form, async () => {
    const updated = await call<User>('PATCH', '/v1/users/me', { dob: formValues(form).dob });
    setUser(updated);
    saved(updated);
    form.replaceWith(h('p', { class: 'ok', role: 'status' }, 'Thank you: your date of birth is saved.'));
  });
  return form;
}

/** Data portability: everything the service keeps about the user, as a JSON file (no secret in it). */
function downloadMyData(): HTMLElement {
  const status = h('p', { class: 'ok', role: 'status' });
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'download-title' },
    h('h2', { id: 'download-title' }, 'Your data'),
    h('p', {}, 'Your profile, sessions, security events and passkeys, as a JSON file.'),
    h('button', { type: 'submit', class: 'secondary' }, 'Download my data'),
    status,
  );
  onSubmit(form, async () => {
    const data = await call<unknown>('GET', '/v1/users/me/export');
    const link = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' })), download: 'my-data.json' });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    status.textContent = 'Downloaded my-data.json.';
  });
  return form;
}

function resendVerification(): HTMLElement {
  const status = h('p', { class: 'ok', role: 'status' });
  const form = h('form', { class: 'card', 'aria-label': 'Verify your email' }, h('p', {}, 'Your email address is not verified yet. Check your mail for the link.'), h('button', { type: 'submit', class: 'secondary' }, 'Send the link again'), status);
  onSubmit(form, async () => {
    await call('POST', '/v1/users/me/email-verification');
    status.textContent = 'Sent. The link works once, for 24 hours.';
  });
  return form;
}

function deleteAccount(): HTMLElement {
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'delete-title' },
    h('h2', { id: 'delete-title' }, 'Delete account'),
    h('p', {}, 'This deletes your profile, passwords, sessions, second factors and passkeys at once. It cannot be undone.'),
    field({ name: 'current_password', label: 'Password to confirm', type: 'password', autocomplete: 'current-password', maxlength: 4096, required: false, hint: NO_PASSWORD_HINT }),
    h('button', { type: 'submit', class: 'danger' }, 'Delete my account'),
  );
  onSubmit(form, async () => {
    await call('DELETE', '/v1/users/me', withoutEmptyPassword(formValues(form)));
    forget();
    navigate('/sign-in', 'Your account was deleted.');
  });
  return form;
}

export const passwordPage: Page = {
  title: 'Change password',
  protected: true,
  async render() {
    const status = h('p', { class: 'ok', role: 'status' });
    const next = await newPasswordField('new_password', 'New password');
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'page-title' },
      field({ name: 'current_password', label: 'Current password', type: 'password', autocomplete: 'current-password', maxlength: 4096, required: false, hint: NO_PASSWORD_HINT }),
      ...next,
      h('p', { class: 'hint' }, 'Your other devices will be signed out.'),
      submit('Change password'),
      status,
    );
    onSubmit(form, async () => {
      status.textContent = '';
      await call('PUT', '/v1/users/me/password', withoutEmptyPassword(formValues(form)));
      form.reset();
      status.textContent = 'Password changed. Your other sessions were signed out.';
    });
    return [heading('Change password'), form];
  },
};

/** "Chrome on Linux" from a user agent; the raw string is shown as a title for the curious. */
export function device(userAgent: string | null): string {
  if (!userAgent) return 'Unknown device';
  const browser = /Edg\//.test(userAgent) ? 'Edge' : /Firefox\//.test(userAgent) ? 'Firefox' : /Chrom(e|ium)\//.test(userAgent) ? 'Chrome' : /Safari\//.test(userAgent) ? 'Safari' : /curl\//.test(userAgent) ? 'curl' : 'A client';
  const os = /Android/.test(userAgent) ? 'Android' : /iPhone|iPad/.test(userAgent) ? 'iOS' : /Windows/.test(userAgent) ? 'Windows' : /Mac OS X/.test(userAgent) ? 'macOS' : /Linux/.test(userAgent) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}

const activeCount = (n: number) => `${n} active session${n === 1 ? '' : 's'}.`;

export const sessionsPage: Page = {
  title: 'My sessions',
  protected: true,
  async render() {
    const { sessions } = await call<{ sessions: SessionInfo[] }>('GET', '/v1/sessions');
    const count = h('p', {}, activeCount(sessions.length));
    const list = h('ul', { class: 'sessions' });
    for (const s of sessions) {
      const item = h(
        'li',
        { class: 'card', 'data-session-id': s.id },
        h('strong', { title: s.user_agent ?? '' }, device(s.user_agent), s.current ? h('span', { class: 'badge' }, 'This device') : null),
        h('span', {}, `Address: ${s.ip ?? 'unknown'}`),
        h('span', {}, `Signed in: ${moment(s.created_at)}`),
        h('span', {}, `Last used: ${moment(s.last_used_at)}`),
      );
      if (!s.current) {
        item.append(
          h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              'aria-label': `Revoke ${device(s.user_agent)}, signed in ${moment(s.created_at)}`,
              onclick: async () => {
                try {
                  await call('DELETE', `/v1/sessions/${s.id}`);
                } catch {
                  announce('Revoking failed. Try again.');
                  return;
                }
                item.remove();
                const left = list.children.length;
                count.textContent = activeCount(left);
                announce('Session revoked.');
                (list.querySelector<HTMLElement>('button') ?? document.querySelector<HTMLElement>('main h1'))?.focus();
              },
            },
            'Revoke',
          ),
        );
      }
      list.append(item);
    }
    const everywhere = h(
      'button',
      {
        type: 'button',
        class: 'danger',
        onclick: async () => {
          try {
            await call('DELETE', '/v1/sessions');
          } catch {
            announce('Signing out everywhere failed. Try again.');
            return;
          }
          forget(); // this session ended with the others
          navigate('/sign-in', 'Signed out everywhere.');
        },
      },
      'Sign out everywhere',
    );
    return [heading('My sessions'), count, list, h('div', { class: 'row' }, everywhere)];
  },
};
