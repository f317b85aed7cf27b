import { ApiError, call } from '../api.js';
import { announce, field, formValues, h } from '../dom.js';
import { dobLimits, EMAIL, NAME, onSubmit, submit, USERNAME } from '../forms.js';
import { navigate, type Page } from '../router.js';
import { can, loadPermissions, reloadPermissions } from '../viewer.js';

/**
 * The admin console (API-ADMIN.md): search users, a user's page with the actions the viewer's
 * permissions allow (only those are offered), and the roles page. The service decides every
 * request again; the page only leaves out what would be refused.
 */

interface AdminUser {
  id: string;
  username: string;
  name: string;
  email: string;
  dob: string;
  email_verified: boolean;
  created_at: string;
  disabled_at: string | null;
  disabled_reason: string | null;
  roles: string[];
  mfa: { totp: boolean; passkeys: number };
  has_password: boolean;
  last_sign_in_at: string | null;
}

interface AdminSession {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string | null;
  ip: string | null;
  amr: string[];
}

interface AdminEvent {
  id: string;
  type: string;
  occurred_at: string;
  actor_id: string | null;
  ip: string | null;
}

interface Role {
  name: string;
  description: string;
  permissions: string[];
  builtin: boolean;
  holders: number;
}

const PERMISSIONS = ['users:read', 'users:write', 'users:credentials', 'users:delete', 'sessions:revoke', 'roles:read', 'roles:write', 'audit:read', 'clients:read', 'clients:write'];

const heading = (text: string) => h('h1', { tabindex: -1 }, text);
const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : 'never');

/** Why an action was refused, in words (a stale sign-in is the usual one). */
function why(err: unknown): string {
  if (!(err instanceof ApiError)) return 'The service could not be reached. Try again.';
  if (err.problem.code === 'reauthentication_required') return 'This needs a recent sign-in: sign out, sign in again, and retry within 15 minutes.';
  return err.problem.detail;
}

/** A line that shows how an action went; screen readers hear it from the page's announcer. */
function statusLine(): HTMLParagraphElement {
  return h('p', { class: 'ok' });
}

function fail(status: HTMLElement, err: unknown): void {
  status.className = 'error';
  status.textContent = why(err);
  announce(status.textContent);
}

function done(status: HTMLElement, message: string): void {
  status.className = 'ok';
  status.textContent = message;
  announce(message);
}

async function requirePermission(permission: string): Promise<void> {
  if (!(await loadPermissions()).has(permission)) throw new Error('not allowed');
}

function userItem(u: AdminUser): HTMLLIElement {
  return h(
    'li',
    { class: 'card', 'data-user-id': u.id },
    h('a', { href: `/admin/users?id=${encodeURIComponent(u.id)}` }, h('strong', {}, u.username)),
    h('span', {}, `${u.name} · ${u.email}`),
    h('span', { class: 'row' }, u.disabled_at ? h('span', { class: 'badge danger-badge' }, 'Disabled') : null, ...u.roles.map((r) => h('span', { class: 'badge' }, r))),
  );
}

export const adminUsersPage: Page = {
  title: 'Users',
  protected: true,
  async render(params) {
    await requirePermission('users:read');
    const q = params.get('q') ?? '';
    const form = h(
      'form',
      { class: 'card', role: 'search', 'aria-label': 'User search' },
      field({ name: 'q', label: 'Search users', type: 'search', value: q, required: false, maxlength: 100, hint: 'A username or email that starts with it, or a name that contains it.' }),
      h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'Any'), h('option', { value: 'active' }, 'Active'), h('option', { value: 'disabled' }, 'Disabled'))),
      submit('Search'),
    );
    const select = form.querySelector('select')!;
    select.value = params.get('status') ?? '';
    const list = h('ul', { class: 'sessions', 'aria-label': 'Users found' });
    const count = h('p', {});
    const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Show more users');
    let next: string | null = null;
    let shown = 0;
    const query = () => {
      const search = new URLSearchParams();
      const values = formValues(form);
      if (values.q) search.set('q', values.q);
      if (values.status) search.set('status', values.status);
      return search;
    };
    const load = async (append: boolean) => {
      const search = query();
      search.set('limit', '20');
      if (append && next) search.set('before', next);
      const page = await call<{ users: AdminUser[]; next: string | null }>('GET', `/v1/admin/users?${search}`);
      if (!append) {
        list.replaceChildren();
        shown = 0;
      }
      const items = page.users.map(userItem);
      list.append(...items);
      shown += items.length;
      next = page.next;
      more.hidden = next === null;
      count.textContent = shown === 0 ? 'No user matches.' : `${shown} user${shown === 1 ? '' : 's'} shown${next ? '; more are available' : ''}.`;
      return items;
    };
    onSubmit(form, async () => {
      // The query goes in the address, so it survives a reload and the back button.
      history.replaceState(null, '', `/admin?${query()}`);
      await load(false);
      announce(count.textContent ?? '');
    });
    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        const items = await load(true);
        announce(`${items.length} more user${items.length === 1 ? '' : 's'} shown.`);
        items[0]?.querySelector('a')?.focus();
      } catch (err) {
        announce(why(err));
      } finally {
        more.disabled = false;
      }
    });
    await load(false);
    return [heading('Users'), ...(can('users:write') ? [newUserForm()] : []), form, count, list, more];
  },
};

/**
 * Making a user (POST /v1/admin/users): without a password, and by default with an invitation
 * mail to choose one, so the admin never knows it. Folded away until asked for.
 */
function newUserForm(): HTMLElement {
  const form = h(
    'form',
    { 'aria-label': 'New user' },
    field({ name: 'username', id: 'f-new-username', label: 'Username', ...USERNAME, autocomplete: 'off' }),
    field({ name: 'name', id: 'f-new-name', label: 'Full name', ...NAME, autocomplete: 'off' }),
    field({ name: 'dob', id: 'f-new-dob', label: 'Date of birth', type: 'date', ...dobLimits() }),
    field({ name: 'email', id: 'f-new-email', label: 'Email', ...EMAIL, autocomplete: 'off' }),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'send_invite', checked: true }), ' Mail an invitation to choose a password'),
    submit('Create user'),
  );
  onSubmit(form, async () => {
    const { send_invite, ...values } = formValues(form);
    const user = await call<AdminUser>('POST', '/v1/admin/users', { ...values, send_invite: send_invite === 'on' });
    announce(`User ${user.username} created.`);
    navigate(`/admin/users?id=${encodeURIComponent(user.id)}`);
  });
  return h('details', { class: 'card' }, h('summary', {}, 'New user'), form);
}

export const adminUserPage: Page = {
  title: 'User',
  protected: true,
  async render(params) {
    await requirePermission('users:read');
    const id = params.get('id') ?? '';
    const [user, { sessions }, { events }] = await Promise.all([
      call<AdminUser>('GET', `/v1/admin/users/${encodeURIComponent(id)}`),
      call<{ sessions: AdminSession[] }>('GET', `/v1/admin/users/${encodeURIComponent(id)}/sessions`),
      call<{ events: AdminEvent[] }>('GET', `/v1/admin/users/${encodeURIComponent(id)}/events?limit=20`),
    ]);
    const base = `/v1/admin/users/${encodeURIComponent(user.id)}`;
    const reload = (message: string) => navigate(`/admin/users?id=${encodeURIComponent(user.id)}`, message);
    const nodes: Node[] = [heading(user.username)];

    nodes.push(
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'profile-title' },
        h('h2', { id: 'profile-title' }, 'Profile'),
        h(
          'dl',
          {},
          h('dt', {}, 'Name'), h('dd', {}, user.name),
          h('dt', {}, 'Email'), h('dd', {}, `${user.email} (${user.email_verified ? 'verified' : 'not verified'})`),
          h('dt', {}, 'Date of birth'), h('dd', {}, user.dob),
          h('dt', {}, 'Created'), h('dd', {}, when(user.created_at)),
          h('dt', {}, 'Last sign-in'), h('dd', {}, when(user.last_sign_in_at)),
          h('dt', {}, 'Status'), h('dd', {}, user.disabled_at ? `Disabled ${when(user.disabled_at)}${user.disabled_reason ? `: ${user.disabled_reason}` : ''}` : 'Active'),
          h('dt', {}, 'Roles'), h('dd', {}, user.roles.length ? user.roles.join(', ') : 'none'),
          h('dt', {}, 'Second factors'), h('dd', {}, `Authenticator app ${user.mfa.totp ? 'on' : 'off'}; ${user.mfa.passkeys} passkey${user.mfa.passkeys === 1 ? '' : 's'}`),
          h('dt', {}, 'Password'), h('dd', {}, user.has_password ? 'set' : 'none'),
        ),
      ),
    );

    // Status: disable with a reason, or enable (users:write).
    if (can('users:write')) {
      const status = statusLine();
      if (user.disabled_at) {
        const enable = h('form', { class: 'card', 'aria-labelledby': 'enable-title' }, h('h2', { id: 'enable-title' }, 'Enable'), h('p', {}, 'The user can sign in again; ended sessions stay ended.'), submit('Enable user'), status);
        onSubmit(enable, async () => {
          await call('POST', `${base}/enable`);
          reload('User enabled.');
        });
        nodes.push(enable);
      } else {
        const disable = h(
          'form',
          { class: 'card', 'aria-labelledby': 'disable-title' },
          h('h2', { id: 'disable-title' }, 'Disable'),
          h('p', {}, 'The user cannot sign in, and every session ends at once.'),
          field({ name: 'reason', label: 'Reason (shown to administrators)', required: false, maxlength: 200 }),
          h('button', { type: 'submit', class: 'danger' }, 'Disable user'),
          status,
        );
        onSubmit(disable, async () => {
          const { reason } = formValues(disable);
          await call('POST', `${base}/disable`, reason ? { reason } : {});
          reload('User disabled.');
        });
        nodes.push(disable);
      }
    }

    // Roles (roles:write, and roles:read to know the roles there are).
    if (can('roles:write') && can('roles:read')) {
      const { roles } = await call<{ roles: Role[] }>('GET', '/v1/admin/roles');
      const status = statusLine();
      const form = h(
        'form',
        { class: 'card', 'aria-labelledby': 'roles-title' },
        h('h2', { id: 'roles-title' }, 'Roles'),
        h(
          'fieldset',
          {},
          h('legend', {}, 'Roles this user holds'),
          ...roles.map((r) =>
            h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'role', value: r.name, checked: user.roles.includes(r.name) }), ` ${r.name}`, h('span', { class: 'hint' }, ` ${r.permissions.join(', ')}`)),
          ),
        ),
        submit('Save roles'),
        status,
      );
      onSubmit(form, async () => {
        const chosen = [...form.querySelectorAll<HTMLInputElement>('input[name="role"]:checked')].map((i) => i.value);
        try {
          await call('PUT', `${base}/roles`, { roles: chosen });
        } catch (err) {
          fail(status, err);
          return;
        }
        reloadPermissions();
        reload('Roles saved.');
      });
      nodes.push(form);
    }

    // Sessions: listed for users:read; ended with sessions:revoke.
    const sessionList = h('ul', { class: 'sessions' });
    const sessionStatus = statusLine();
    for (const s of sessions) {
      const item = h(
        'li',
        { 'data-session-id': s.id },
        h('strong', {}, s.user_agent ?? 'Unknown device'),
        h('span', {}, `Address: ${s.ip ?? 'unknown'} · signed in ${when(s.created_at)} (${s.amr.join(' + ')}) · last used ${when(s.last_used_at)}`),
      );
      if (can('sessions:revoke')) {
        item.append(
          h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              'aria-label': `End the session signed in ${when(s.created_at)}`,
              onclick: async () => {
                try {
                  await call('DELETE', `${base}/sessions/${encodeURIComponent(s.id)}`);
                } catch (err) {
                  fail(sessionStatus, err);
                  return;
                }
                item.remove();
                done(sessionStatus, 'Session ended.');
                (sessionList.querySelector<HTMLElement>('button') ?? sessionStatus).focus();
              },
            },
            'End session',
          ),
        );
      }
      sessionList.append(item);
    }
    const sessionsCard = h('section', { class: 'card', 'aria-labelledby': 'sessions-title' }, h('h2', { id: 'sessions-title' }, 'Sessions'), sessions.length ? sessionList : h('p', {}, 'No active session.'), sessionStatus);
    sessionStatus.tabIndex = -1;
    if (can('sessions:revoke') && sessions.length > 1) {
      sessionsCard.append(
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: async () => {
              try {
                await call('DELETE', `${base}/sessions`);
              } catch (err) {
                fail(sessionStatus, err);
                return;
              }
              reload('Every session ended.');
            },
          },
          'End all sessions',
        ),
      );
    }
    nodes.push(sessionsCard);

    // Credentials (users:credentials): a reset mail, a new password, the authenticator app off.
    if (can('users:credentials')) {
      const status = statusLine();
      const reset = h('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          try {
            await call('POST', `${base}/password-reset`);
            done(status, 'A password reset link was mailed to the user.');
          } catch (err) {
            fail(status, err);
          }
        },
      }, 'Send a password reset link');
      const password = h(
        'form',
        { 'aria-labelledby': 'password-title' },
        h('h3', { id: 'password-title' }, 'Set a password'),
        field({ name: 'new_password', label: 'New password', type: 'password', autocomplete: 'new-password', minlength: 8 }),
        h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'revoke_sessions', checked: true }), ' End every session of the user'),
        submit('Set password'),
      );
      onSubmit(password, async () => {
        const revoke = password.querySelector<HTMLInputElement>('input[name="revoke_sessions"]')!.checked;
        await call('PUT', `${base}/password`, { new_password: formValues(password).new_password, revoke_sessions: revoke });
        password.reset();
        done(status, 'The password is set.');
      });
      const card = h('section', { class: 'card', 'aria-labelledby': 'credentials-title' }, h('h2', { id: 'credentials-title' }, 'Credentials'), h('div', { class: 'row' }, reset), password, status);
      if (user.mfa.totp) {
        card.append(
          h('button', {
            type: 'button',
            class: 'danger',
            onclick: async () => {
              try {
                await call('DELETE', `${base}/mfa`);
              } catch (err) {
                fail(status, err);
                return;
              }
              reload('The authenticator app is turned off.');
            },
          }, 'Turn off the authenticator app'),
        );
      }
      nodes.push(card);
    }

    nodes.push(
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'events-title' },
        h('h2', { id: 'events-title' }, 'Recent events'),
        events.length
          ? h('ul', {}, ...events.map((e) => h('li', {}, `${when(e.occurred_at)}: ${e.type.replaceAll('_', ' ')}${e.actor_id ? ` (by administrator #${e.actor_id})` : ''}${e.ip ? ` from ${e.ip}` : ''}`)))
          : h('p', {}, 'No event.'),
      ),
    );

    // Delete (users:delete): only once the username is typed.
    if (can('users:delete')) {
      const status = statusLine();
      const confirm = h('input', { id: 'f-confirm', name: 'confirm', autocomplete: 'off', 'aria-describedby': 'f-confirm-hint' });
      const button = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Delete user');
      confirm.addEventListener('input', () => (button.disabled = confirm.value !== user.username));
      const form = h(
        'form',
        { class: 'card', 'aria-labelledby': 'delete-title' },
        h('h2', { id: 'delete-title' }, 'Delete'),
        h('p', {}, 'Every row of the user goes; the audit log keeps the events under a pseudonym. This cannot be undone.'),
        h('div', { class: 'field' }, h('label', { for: 'f-confirm' }, `Type ${user.username} to confirm`), confirm, h('p', { class: 'hint', id: 'f-confirm-hint' }, 'The delete button works once the username matches.')),
        button,
        status,
      );
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        if (confirm.value !== user.username) return;
        button.disabled = true;
        try {
          await call('DELETE', base);
        } catch (err) {
          button.disabled = false;
          fail(status, err);
          return;
        }
        navigate('/admin', `${user.username} was deleted.`);
      });
      nodes.push(form);
    }
    return nodes;
  },
};

export const adminRolesPage: Page = {
  title: 'Roles',
  protected: true,
  async render() {
    await requirePermission('roles:read');
    const { roles } = await call<{ roles: Role[] }>('GET', '/v1/admin/roles');
    const status = statusLine();
    const list = h(
      'ul',
      { class: 'sessions', 'aria-label': 'Roles' },
      ...roles.map((r) => {
        const item = h(
          'li',
          { class: 'card', 'data-role': r.name },
          h('strong', {}, r.name, r.builtin ? h('span', { class: 'badge' }, 'built-in') : null),
          r.description ? h('span', {}, r.description) : null,
          h('span', {}, `Permissions: ${r.permissions.length ? r.permissions.join(', ') : 'none'}`),
          h('span', {}, `Held by ${r.holders} user${r.holders === 1 ? '' : 's'}`),
        );
        if (!r.builtin && can('roles:write')) {
          item.append(
            h('button', {
              type: 'button',
              class: 'danger',
              'aria-label': `Delete the role ${r.name}`,
              onclick: async () => {
                try {
                  await call('DELETE', `/v1/admin/roles/${encodeURIComponent(r.name)}`);
                } catch (err) {
                  fail(status, err);
                  return;
                }
                reloadPermissions();
                navigate('/admin/roles', `Role ${r.name} deleted.`);
              },
            }, 'Delete role'),
          );
        }
        return item;
      }),
    );
    const nodes: Node[] = [heading('Roles'), status, list];
    if (can('roles:write')) {
      const form = h(
        'form',
        { class: 'card', 'aria-labelledby': 'new-role-title' },
        h('h2', { id: 'new-role-title' }, 'New role'),
        field({ name: 'name', label: 'Name', pattern: '[a-z][a-z0-9_\\-]{1,31}', maxlength: 32, hint: 'Lower-case letters, digits, “_” or “-”; starts with a letter; 2–32 characters.' }),
        field({ name: 'description', label: 'Description', required: false, maxlength: 200 }),
        h('fieldset', {}, h('legend', {}, 'Permissions'), ...PERMISSIONS.map((p) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'permission', value: p }), ` ${p}`))),
        submit('Make role'),
      );
      onSubmit(form, async () => {
        const values = formValues(form);
        const permissions = [...form.querySelectorAll<HTMLInputElement>('input[name="permission"]:checked')].map((i) => i.value);
        await call('POST', '/v1/admin/roles', { name: values.name, description: values.description ?? '', permissions });
        navigate('/admin/roles', `Role ${values.name} made.`);
      });
      nodes.push(form);
    }
    return nodes;
  },
};
