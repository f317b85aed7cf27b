import { auth, onSessionEnded, resume, signOut } from './api.js';
import { announce, h } from './dom.js';
import { passwordPage, profilePage, sessionsPage, signInPage, signUpPage } from './pages/account.js';
import { forgotPasswordPage, resetPasswordPage, verifyEmailPage } from './pages/recovery.js';
import { completeSignUpPage } from './pages/federation.js';
import { securityPage } from './pages/security.js';
import { definePages, navigate, show } from './router.js';

definePages({
  '/sign-in': signInPage,
  '/sign-up': signUpPage,
  '/profile': profilePage,
  '/password': passwordPage,
  '/sessions': sessionsPage,
  '/security': securityPage,
  '/forgot-password': forgotPasswordPage,
  '/reset-password': resetPasswordPage,
  '/verify-email': verifyEmailPage,
  '/complete-sign-up': completeSignUpPage,
});

function renderNav(): void {
  const nav = document.getElementById('nav')!;
  const link = (href: string, text: string) => h('a', { href }, text);
  if (auth.signedIn) {
    nav.replaceChildren(
      link('/profile', 'Profile'),
      link('/password', 'Password'),
      link('/sessions', 'Sessions'),
      link('/security', 'Security'),
      h('button', { type: 'button', class: 'link-button', onclick: async () => {
        try {
          await signOut();
          navigate('/sign-in', 'Signed out.');
        } catch {
          announce('Signing out failed: you are still signed in. Try again.');
        }
      } }, 'Sign out'),
    );
  } else {
    nav.replaceChildren(link('/sign-in', 'Sign in'), link('/sign-up', 'Create account'));
  }
  for (const a of nav.querySelectorAll('a')) if (a.getAttribute('href') === location.pathname) a.setAttribute('aria-current', 'page');
}

// Links inside the app change the page without a reload (the access token lives in memory).
document.addEventListener('click', (event) => {
  const a = (event.target as Element).closest?.('a');
  if (!a || a.origin !== location.origin || a.target || a.hasAttribute('download') || event.ctrlKey || event.metaKey || event.shiftKey) return;
  if (a.pathname === location.pathname && a.hash) return; // in-page links (skip to content)
  if (a.pathname.startsWith('/docs') || a.pathname.startsWith('/v1/')) return;
  event.preventDefault();
  navigate(a.pathname + a.search + a.hash);
});
window.addEventListener('popstate', () => void show());
auth.onChange(renderNav);
// Revoked elsewhere or expired while the page was open: back to sign in, saying why.
onSessionEnded(() => navigate('/sign-in', 'Your session ended. Sign in again.'));

// A reload keeps the user signed in: the refresh cookie buys a new access token.
await resume().catch(() => false);
renderNav();
await show();
