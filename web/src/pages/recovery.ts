import { publicCall } from '../api.js';
import { announce, field, formValues, h } from '../dom.js';
import { newPasswordField, onSubmit, showProblem, submit } from '../forms.js';
import type { Page } from '../router.js';

/** Reads `#token=…` from the link of a mail and drops it from the address bar and history. */
function tokenFromFragment(): string | undefined {
  const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? undefined;
  if (location.hash) history.replaceState(null, '', location.pathname);
  return token;
}

function heading(text: string): HTMLHeadingElement {
  return h('h1', { tabindex: -1 }, text);
}

export const forgotPasswordPage: Page = {
  title: 'Forgot password',
  render() {
    const status = h('p', { class: 'ok', role: 'status' });
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'page-title' },
      h('p', {}, 'Enter the email of your account and we will send you a link to choose a new password.'),
      field({ name: 'email', label: 'Email', type: 'email', maxlength: 254, autocomplete: 'email' }),
      submit('Send the link'),
      status,
    );
    onSubmit(form, async () => {
      await publicCall('POST', '/v1/password-resets', formValues(form));
      // The same answer whether or not the address has an account (no enumeration).
      status.textContent = 'If an account uses that address, a link is on its way. It works once, for 30 minutes.';
    });
    return [heading('Forgot password'), form, h('p', {}, h('a', { href: '/sign-in' }, 'Back to sign in'))];
  },
};

export const resetPasswordPage: Page = {
  title: 'Choose a new password',
  async render() {
    const token = tokenFromFragment();
    if (!token) {
      return [heading('Choose a new password'), h('p', { class: 'error', role: 'alert' }, 'This page needs the link from the mail.'), h('p', {}, h('a', { href: '/forgot-password' }, 'Ask for a new link'))];
    }
    const done = h('div', { role: 'status' });
    const next = await newPasswordField('new_password', 'New password');
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'page-title' },
      ...next,
      h('p', { class: 'hint' }, 'Every device signed in to your account will be signed out.'),
      submit('Set new password'),
    );
    onSubmit(form, async () => {
      await publicCall('POST', '/v1/password-resets/complete', { token, ...formValues(form) });
      form.remove();
      done.replaceChildren(h('p', { class: 'ok' }, 'Your password is changed.'), h('p', {}, h('a', { href: '/sign-in' }, 'Sign in with it')));
      announce('Your password is changed.');
    });
    return [heading('Choose a new password'), form, done];
  },
};

export const verifyEmailPage: Page = {
  title: 'Verify email',
  async render() {
    const token = tokenFromFragment();
    const result = h('div', { class: 'card', role: 'status' });
    if (!token) {
      result.append(h('p', { class: 'error' }, 'This page needs the link from the mail.'));
    } else {
      const form = h('form', {});
      try {
        await publicCall('POST', '/v1/email-verifications', { token });
        result.append(h('p', { class: 'ok' }, 'Your email address is verified. Thank you.'));
      } catch (err) {
        showProblem(form, err);
        result.append(form, h('p', {}, 'Sign in and send a new link from your profile.'));
      }
    }
    return [heading('Verify email'), result, h('p', {}, h('a', { href: '/' }, 'Go to your account'))];
  },
};
