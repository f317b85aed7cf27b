import { announce, h } from './dom.js';

/** The service's own address (PUBLIC_URL), which the server writes into the page. */
export function publicOrigin(): string | undefined {
  const content = document.querySelector<HTMLMetaElement>('meta[name="public-url"]')?.content;
  try {
    return content ? new URL(content).origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Passkeys are bound to PUBLIC_URL: at any other address (http://127.0.0.1:PORT for
 * http://localhost:PORT) the browser refuses them whatever the user does. Says so, with a link
 * to this page at the right address, instead of a "cancelled or not available" that sends the
 * user looking at their device. Answers false (and shows nothing) at the right address.
 */
export function refusePasskeysElsewhere(form: HTMLFormElement): boolean {
  const origin = publicOrigin();
  if (!origin || origin === location.origin) return false;
  const text = `Passkeys work only at the service's own address, ${origin} (its PUBLIC_URL); this page is at ${location.origin}.`;
  form.prepend(h('p', { class: 'error form-error', role: 'alert' }, text, ' ', h('a', { href: `${origin}${location.pathname}` }, 'Open this page there'), '.'));
  announce(text);
  return true;
}
