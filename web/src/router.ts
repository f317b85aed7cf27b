import { auth } from './api.js';
import { announce, h } from './dom.js';

const link = (href: string, text: string) => h('p', {}, h('a', { href }, text));

export interface Page {
  title: string;
  /** Only for a signed-in user; others are sent to sign in. */
  protected?: boolean;
  /** Only for a signed-out user (sign in, sign up); a signed-in one goes to the profile. */
  guestOnly?: boolean;
  render(params: URLSearchParams): Node[] | Promise<Node[]>;
}

const pages = new Map<string, Page>();

export function definePages(entries: Record<string, Page>): void {
  for (const [path, page] of Object.entries(entries)) pages.set(path, page);
}

export function navigate(path: string, message?: string): void {
  history.pushState(null, '', path);
  void show(message);
}

/** Renders the page of the current URL, moves focus to its heading and announces it. */
let renders = 0;

export async function show(message?: string): Promise<void> {
  const main = document.getElementById('main')!;
  const render = ++renders; // a newer navigation wins over a slower, older render
  let path = location.pathname;
  if (path === '/') path = auth.signedIn ? '/profile' : '/sign-in';
  const page = pages.get(path);
  if (!page) {
    document.title = 'Page not found · Account';
    main.replaceChildren(Object.assign(document.createElement('h1'), { textContent: 'Page not found', tabIndex: -1 }), link('/', 'Go to your account'));
    main.querySelector('h1')!.focus();
    announce('Page not found');
    return;
  }
  if (page.protected && !auth.signedIn) {
    history.replaceState(null, '', '/sign-in');
    return show(message);
  }
  if (page.guestOnly && auth.signedIn) {
    history.replaceState(null, '', '/profile');
    return show(message);
  }
  if (location.pathname !== path) history.replaceState(null, '', path);
  let nodes: Node[];
  try {
    nodes = await page.render(new URLSearchParams(location.search));
  } catch {
    if (render !== renders) return;
    if (page.protected && !auth.signedIn) return show(message);
    nodes = [Object.assign(document.createElement('h1'), { textContent: page.title }), Object.assign(document.createElement('p'), { className: 'error', role: 'alert', textContent: 'This page could not be loaded. Try again.' })];
  }
  if (render !== renders) return;
  document.title = `${page.title} · Account`;
  main.replaceChildren(...nodes);
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === path) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.id = 'page-title';
    h1.focus();
  }
  announce(message ? `${message} ${page.title}` : page.title);
}
