import { auth, onMfaSetupRequired, onSessionEnded, resume, signOut } from './api.js';
import { announce, h } from './dom.js';
import { passwordPage, profilePage, sessionsPage, signInPage, signUpPage } from './pages/account.js';
import { forgotPasswordPage, resetPasswordPage, verifyEmailPage } from './pages/recovery.js';
import { completeSignUpPage } from './pages/federation.js';
import { securityPage } from './pages/security.js';
import { authorizeAppPage, connectedAppsPage } from './pages/apps.js';
import { definePages, navigate, show } from './router.js';
import { adminRolesPage, adminUserPage, adminUsersPage } from './pages/admin.js';
import { can, loadPermissions, reloadPermissions } from './viewer.js';
import { acceptInvitationPage, orgPage, orgsPage } from './pages/orgs.js';

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
  // The admin console (API-ADMIN.md), offered to holders of users:read / roles:read.
  '/admin': adminUsersPage,
  '/admin/users': adminUserPage,
  '/admin/roles': adminRolesPage,
  '/complete-sign-up': completeSignUpPage,
  // The OpenID Provider (API-FEDERATION.md B): an app's sign-in, and the consents.
  '/authorize-app': authorizeAppPage,
  '/connected-apps': connectedAppsPage,
  // Organizations (API-ORGS.md).
  '/orgs': orgsPage,
  '/orgs/view': orgPage,
  '/accept-invitation': acceptInvitationPage,
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
      link('/connected-apps', 'Apps'),
      link('/orgs', 'Organizations'),
      ...(can('users:read') ? [link('/admin', 'Admin')] : []),
      ...(can('roles:read') ? [link('/admin/roles', 'Roles')] : []),
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
auth.onChange(() => {
  renderNav();
  // What the console may offer: read once per signed-in user, then the links follow.
  if (auth.signedIn) loadPermissions().then(renderNav, () => {});
  else reloadPermissions();
});
// MFA_REQUIRED_FOR: a session that may only set up a second factor goes straight to the set-up.
onMfaSetupRequired(() => {
  if (location.pathname !== '/security') navigate('/security', 'Set up a second factor to continue: an authenticator app or a passkey.');
});
// Revoked elsewhere or expired while the page was open: back to sign in, saying why.
onSessionEnded(() => navigate('/sign-in', 'Your session ended. Sign in again.'));

// A reload keeps the user signed in: the refresh cookie buys a new access token.
await resume().catch(() => false);
renderNav();
await show();
