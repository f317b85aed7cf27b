import { startAuthentication, startRegistration } from '@simplewebauthn/browser';
import { ApiError, call, publicCall, signIn, type MfaState, type Passkey, type RecoveryCodes, type TotpSetup } from '../api.js';
import { announce, clearErrors, field, formValues, h } from '../dom.js';
import { onSubmit, showProblem, submit } from '../forms.js';
import { moment } from '../dates.js';
import { refusePasskeysElsewhere } from '../public-url.js';
import type { Page } from '../router.js';
import { linkedAccountsSection, NO_PASSWORD_HINT, withoutEmptyPassword } from './federation.js';


/** Sign-in with a discoverable passkey: no username, the authenticator says whose it is. */
export async function signInWithPasskey(): Promise<void> {
  const optionsJSON = await publicCall<Parameters<typeof startAuthentication>[0]['optionsJSON']>('POST', '/v1/sessions/passkey/options');
  let response;
  try {
    response = await startAuthentication({ optionsJSON });
  } catch {
    throw new ApiError({ status: 0, code: 'cancelled', detail: 'The passkey sign-in was cancelled or is not available on this device.' });
  }
  await signIn('/v1/sessions/passkey', { response });
}

function heading(text: string): HTMLHeadingElement {
  return h('h1', { tabindex: -1 }, text);
}

export const securityPage: Page = {
  title: 'Security',
  protected: true,
  async render() {
    const section = h('div', {});
    const refresh = async (focus?: string) => {
      section.replaceChildren(...(await sections(refresh)));
      if (focus) section.querySelector<HTMLElement>(focus)?.focus();
    };
    await refresh();
    return [heading('Security'), section];
  },
};

async function sections(refresh: (focus?: string) => Promise<void>): Promise<Node[]> {
  const [state, { passkeys }] = await Promise.all([call<MfaState>('GET', '/v1/users/me/mfa'), call<{ passkeys: Passkey[] }>('GET', '/v1/users/me/passkeys')]);
  const linked = await linkedAccountsSection(refresh);
  return [totpSection(state, refresh), passkeySection(passkeys, refresh), ...(linked ? [linked] : [])];
}

function totpSection(state: MfaState, refresh: (focus?: string) => Promise<void>): HTMLElement {
  const card = h('section', { class: 'card', 'aria-labelledby': 'totp-title' }, h('h2', { id: 'totp-title', tabindex: -1 }, 'Authenticator app'));
  if (state.totp) {
    card.append(h('p', { id: 'totp-state' }, `On. ${state.recovery_codes_left} recovery code${state.recovery_codes_left === 1 ? '' : 's'} left.`));
    const form = h(
      'form',
      { 'aria-label': 'Turn off the authenticator app' },
      field({ name: 'current_password', label: 'Password to turn it off', type: 'password', autocomplete: 'current-password', maxlength: 4096, required: false, hint: NO_PASSWORD_HINT }),
      h('button', { type: 'submit', class: 'danger' }, 'Turn off'),
    );
    onSubmit(form, async () => {
      await call('DELETE', '/v1/users/me/mfa/totp', withoutEmptyPassword(formValues(form)));
      announce('The authenticator app is off.');
      await refresh('#totp-title');
    });
    card.append(form);
    return card;
  }
  card.append(h('p', { id: 'totp-state' }, 'Off. Add a code from an app on your phone to every password sign-in.'));
  const start = h(
    'form',
    { 'aria-label': 'Turn on the authenticator app' },
    field({ name: 'current_password', label: 'Password to turn it on', type: 'password', autocomplete: 'current-password', maxlength: 4096, required: false, hint: NO_PASSWORD_HINT }),
    submit('Set up'),
  );
  onSubmit(start, async () => {
    const setup = await call<TotpSetup>('POST', '/v1/users/me/mfa/totp', withoutEmptyPassword(formValues(start)));
    start.replaceWith(confirmTotp(setup, refresh));
    card.querySelector<HTMLElement>('#qr-title')?.focus();
  });
  card.append(start);
  return card;
}

function confirmTotp(setup: { secret: string; qr_svg: string }, refresh: (focus?: string) => Promise<void>): HTMLElement {
  const qr = h('img', { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(setup.qr_svg)}`, alt: 'QR code of the authenticator set-up', width: 200, height: 200 });
  const form = h(
    'form',
    { 'aria-label': 'Confirm the authenticator app' },
    field({ name: 'code', label: 'Code from the app', autocomplete: 'one-time-code', inputmode: 'numeric', pattern: '[0-9]{6}', minlength: 6, maxlength: 6 }),
    submit('Turn on'),
  );
  const box = h(
    'div',
    {},
    h('h3', { id: 'qr-title', tabindex: -1 }, 'Scan this code with your authenticator app'),
    qr,
    h('p', {}, 'Or type this key: ', h('code', { id: 'totp-secret' }, setup.secret)),
    form,
  );
  onSubmit(form, async () => {
    const { recovery_codes } = await call<RecoveryCodes>('POST', '/v1/users/me/mfa/totp/confirm', formValues(form));
    const state = document.getElementById('totp-state');
    if (state) state.textContent = 'On. Save your recovery codes now: they are shown only once.';
    box.replaceWith(recoveryCodes(recovery_codes, refresh));
    announce('The authenticator app is on. Save your recovery codes now.');
  });
  return box;
}

function recoveryCodes(codes: string[], refresh: (focus?: string) => Promise<void>): HTMLElement {
  const text = `Recovery codes (each works once)\n\n${codes.join('\n')}\n`;
  const status = h('p', { class: 'ok', role: 'status' });
  return h(
    'div',
    { id: 'recovery-codes' },
    h('h3', { tabindex: -1 }, 'Your recovery codes'),
    h('p', {}, 'Each code signs you in once if you lose your phone. They are shown only now: copy or download them.'),
    h('ul', { class: 'codes' }, ...codes.map((c) => h('li', {}, h('code', {}, c)))),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'button', class: 'secondary', onclick: async () => {
        await navigator.clipboard.writeText(text).then(
          () => (status.textContent = 'Copied.'),
          () => (status.textContent = 'Copying is not allowed here: download them instead.'),
        );
      } }, 'Copy'),
      h('button', { type: 'button', class: 'secondary', onclick: () => {
        const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })), download: 'recovery-codes.txt' });
        a.click();
        URL.revokeObjectURL(a.href);
      } }, 'Download'),
      h('button', { type: 'button', onclick: () => void refresh('#totp-title') }, 'I saved them'),
    ),
    status,
  );
}

function passkeySection(passkeys: Passkey[], refresh: (focus?: string) => Promise<void>): HTMLElement {
  const errors = h('form', { 'aria-label': 'Passkey errors' });
  const list = h('ul', { class: 'sessions', id: 'passkeys' });
  for (const p of passkeys) {
    list.append(
      h(
        'li',
        { class: 'card', 'data-passkey-id': p.id },
        h('strong', {}, p.name),
        h('span', {}, `Added: ${moment(p.created_at)}`),
        h('span', {}, `Last used: ${p.last_used_at ? moment(p.last_used_at) : 'never'}`),
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove passkey ${p.name}`, onclick: async () => {
          clearErrors(errors);
          try {
            await call('DELETE', `/v1/users/me/passkeys/${p.id}`);
            announce(`Passkey ${p.name} removed.`);
            await refresh('#passkeys-title');
          } catch (err) {
            showProblem(errors, err);
          }
        } }, 'Remove'),
      ),
    );
  }
  const add = h(
    'form',
    { 'aria-label': 'Add a passkey' },
    field({ name: 'name', label: 'Name of the new passkey', maxlength: 64, value: guessDeviceName() }),
    submit('Add a passkey'),
  );
  onSubmit(add, async () => {
    if (refusePasskeysElsewhere(add)) return;
    const optionsJSON = await call<Parameters<typeof startRegistration>[0]['optionsJSON']>('POST', '/v1/users/me/passkeys/options');
    let response;
    try {
      response = await startRegistration({ optionsJSON });
    } catch {
      throw new ApiError({ status: 0, code: 'cancelled', detail: 'Adding the passkey was cancelled or is not available on this device.' });
    }
    await call('POST', '/v1/users/me/passkeys', { name: formValues(add).name, response });
    announce('Passkey added.');
    await refresh('#passkeys-title');
  });
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'passkeys-title' },
    h('h2', { id: 'passkeys-title', tabindex: -1 }, 'Passkeys'),
    h('p', {}, passkeys.length ? `${passkeys.length} passkey${passkeys.length === 1 ? '' : 's'}.` : 'No passkey yet. A passkey signs you in with your fingerprint, face or screen lock, no password needed.'),
    errors,
    list,
    add,
  );
}

function guessDeviceName(): string {
  const ua = navigator.userAgent;
  return /iPhone|iPad/.test(ua) ? 'iPhone' : /Android/.test(ua) ? 'Android phone' : /Mac OS X/.test(ua) ? 'Mac' : /Windows/.test(ua) ? 'Windows PC' : 'This device';
}
