import { ApiError, auth, call, switchOrganization, type Answer } from '../api.js';
import { announce, field, formValues, h } from '../dom.js';
import { onSubmit, submit } from '../forms.js';
import { navigate, type Page } from '../router.js';

/**
 * Organizations (API-ORGS.md): the caller's organizations and the switcher, a page per
 * organization (members, invitations, roles, settings) offering only what the viewer's role
 * allows, and the invitation accept page. The service decides every request again.
 */

type MyOrg = Answer<'/v1/orgs', 'get', 200>['orgs'][number];
type Org = Answer<'/v1/orgs/{id}', 'get', 200>;
type Membership = Answer<'/v1/orgs/{id}/members', 'get', 200>['members'][number];
type Invitation = Answer<'/v1/orgs/{id}/invitations', 'get', 200>['invitations'][number];
type OrgRole = Answer<'/v1/orgs/{id}/roles', 'get', 200>['roles'][number];

const heading = (text: string) => h('h1', { tabindex: -1 }, text);
const problemText = (err: unknown) => (err instanceof ApiError ? err.problem.detail : 'The service could not be reached. Try again.');

/** Runs a button's action, saying what happened in `status`. */
function action(label: string, run: () => Promise<string | void>, status: HTMLElement): HTMLButtonElement {
  const button = h('button', { type: 'button' }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const said = await run();
      if (said) announce(said);
    } catch (err) {
      status.textContent = problemText(err);
      announce(problemText(err));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export const orgsPage: Page = {
  title: 'Organizations',
  protected: true,
  async render() {
    const { orgs } = await call<{ orgs: MyOrg[] }>('GET', '/v1/orgs');
    const status = h('p', { class: 'error', role: 'alert' });
    const active = auth.orgId;

    const switcher = h('select', { id: 'f-org-switch', name: 'org_id' }, h('option', { value: '' }, 'No organization (just me)'), ...orgs.map((o) => h('option', { value: o.id, selected: o.id === active }, o.name)));
    const switchForm = h('form', {}, h('div', { class: 'field' }, h('label', { for: 'f-org-switch' }, 'Act for'), switcher), submit('Switch'));
    onSubmit(switchForm, async () => {
      await switchOrganization(switcher.value === '' ? null : switcher.value);
      navigate('/orgs', switcher.value === '' ? 'You act for yourself only now.' : `You act for ${orgs.find((o) => o.id === switcher.value)?.name} now.`);
    });

    const list = orgs.length
      ? h(
          'table',
          {},
          h('caption', {}, 'Your organizations'),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Slug'), h('th', { scope: 'col' }, 'Your role'), h('th', { scope: 'col' }, 'Members'))),
          h(
            'tbody',
            {},
            ...orgs.map((o) =>
              h('tr', {}, h('td', {}, h('a', { href: `/orgs/view?id=${o.id}` }, o.name), o.id === active ? ' (active)' : ''), h('td', {}, o.slug), h('td', {}, o.role), h('td', {}, String(o.members))),
            ),
          ),
        )
      : h('p', {}, 'You belong to no organization yet. Make one, or accept an invitation from a colleague.');

    const create = h(
      'form',
      {},
      h('h2', {}, 'Make an organization'),
      field({ name: 'name', label: 'Name', maxlength: 100 }),
      field({ name: 'slug', label: 'Slug', hint: '2 to 39 lower-case letters, digits or "-", used in addresses.', pattern: '[a-z0-9][a-z0-9\\-]{1,38}' }),
      submit('Make organization'),
    );
    onSubmit(create, async (form) => {
      const made = await call<Org>('POST', '/v1/orgs', formValues(form));
      navigate(`/orgs/view?id=${made.id}`, `${made.name} is made; you are its owner.`);
    });

    return [heading('Organizations'), status, ...(orgs.length ? [switchForm] : []), list, create];
  },
};

export const orgPage: Page = {
  title: 'Organization',
  protected: true,
  async render(params) {
    const id = params.get('id') ?? '';
    const [org, { orgs }, { roles }] = await Promise.all([
      call<Org>('GET', `/v1/orgs/${encodeURIComponent(id)}`),
      call<{ orgs: MyOrg[] }>('GET', '/v1/orgs'),
      call<{ roles: OrgRole[] }>('GET', `/v1/orgs/${encodeURIComponent(id)}/roles`),
    ]);
    const myRole = orgs.find((o) => o.id === org.id)?.role ?? '';
    const permissionsOf = (role: string) => new Set(roles.find((r) => r.name === role)?.permissions ?? []);
    const mine = permissionsOf(myRole);
    const isOwner = myRole === 'owner';
    /** Roles strictly below the viewer's own (an owner manages every role). */
    const below = (role: string) => isOwner || (() => {
      const theirs = permissionsOf(role);
      return theirs.size < mine.size && [...theirs].every((p) => mine.has(p));
    })();
    const base = `/v1/orgs/${encodeURIComponent(org.id)}`;
    const status = h('p', { class: 'error', role: 'alert' });
    const reload = (message: string) => navigate(`/orgs/view?id=${org.id}`, message);
    const me = auth.user?.id;

    const { members } = await call<{ members: Membership[] }>('GET', `${base}/members?limit=100`);
    const memberRows = members.map((m) => {
      const cells: Node[] = [h('td', {}, m.user.name, ' ', h('span', { class: 'hint' }, `(${m.user.username})`)), h('td', {}, m.user.email)];
      const manage = mine.has('org:members') && m.user.id !== me && below(m.role);
      if (manage) {
        const select = h('select', { 'aria-label': `Role of ${m.user.username}` }, ...roles.filter((r) => below(r.name)).map((r) => h('option', { value: r.name, selected: r.name === m.role }, r.name)));
        cells.push(
          h('td', {}, select, ' ', action('Change role', async () => {
            await call('PATCH', `${base}/members/${m.user.id}`, { role: select.value });
            reload(`${m.user.username} is ${select.value} now.`);
          }, status)),
          h('td', {}, action('Remove', async () => {
            await call('DELETE', `${base}/members/${m.user.id}`);
            reload(`${m.user.username} was removed.`);
          }, status)),
        );
      } else {
        cells.push(h('td', {}, m.role), h('td', {}, m.user.id === me && !(isOwner && members.filter((x) => x.role === 'owner').length === 1) ? action('Leave', async () => {
          await call('DELETE', `${base}/members/${m.user.id}`);
          navigate('/orgs', `You left ${org.name}.`);
        }, status) : ''));
      }
      return h('tr', {}, ...cells);
    });
    const sections: Node[] = [
      heading(org.name),
      h('p', {}, `Slug: ${org.slug}. Your role: ${myRole}.`),
      status,
      h('h2', {}, 'Members'),
      h('table', {}, h('caption', {}, org.members === 1 ? '1 member' : `${org.members} members`), h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Email'), h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, ''))), h('tbody', {}, ...memberRows)),
    ];

    if (mine.has('org:members')) {
      const { invitations } = await call<{ invitations: Invitation[] }>('GET', `${base}/invitations`);
      const roleSelect = h('select', { id: 'f-invite-role', name: 'role' }, ...roles.filter((r) => below(r.name)).map((r) => h('option', { value: r.name, selected: r.name === 'member' }, r.name)));
      const invite = h('form', {}, field({ name: 'email', label: 'Email to invite', type: 'email', id: 'f-invite-email' }), h('div', { class: 'field' }, h('label', { for: 'f-invite-role' }, 'Role'), roleSelect), submit('Send invitation'));
      onSubmit(invite, async (form) => {
        const made = await call<Invitation>('POST', `${base}/invitations`, formValues(form));
        reload(`An invitation went to ${made.email}.`);
      });
      sections.push(
        h('h2', {}, 'Invitations'),
        invitations.length
          ? h('ul', {}, ...invitations.map((i) => h('li', {}, `${i.email} as ${i.role}, until ${new Date(i.expires_at).toLocaleDateString()} `, action('Withdraw', async () => {
              await call('DELETE', `${base}/invitations/${i.id}`);
              reload(`The invitation to ${i.email} was withdrawn.`);
            }, status))))
          : h('p', {}, 'No pending invitations.'),
        invite,
      );
    }

    const ORG_PERMISSIONS = ['org:read', 'org:members', 'org:settings', 'org:delete'];
    sections.push(
      h('h2', {}, 'Roles'),
      h('ul', {}, ...roles.map((r) => h('li', {}, `${r.name}: ${r.permissions.join(', ')}`, r.builtin ? '' : ' (custom) ', !r.builtin && mine.has('org:settings') ? action(`Delete role ${r.name}`, async () => {
        await call('DELETE', `${base}/roles/${encodeURIComponent(r.name)}`);
        reload(`The role ${r.name} was deleted.`);
      }, status) : ''))),
    );
    if (mine.has('org:settings')) {
      // A custom role no broader than the viewer's own permissions (owners: any).
      const offered = ORG_PERMISSIONS.filter((p) => isOwner || mine.has(p));
      const newRole = h(
        'form',
        {},
        field({ name: 'name', label: 'New role name', id: 'f-role-name', hint: 'A lower-case letter, then 1 to 31 lower-case letters, digits, "_" or "-".', pattern: '[a-z][a-z0-9_\\-]{1,31}' }),
        h('fieldset', {}, h('legend', {}, 'Its permissions'), ...offered.map((p) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'permissions', value: p, required: false }), ` ${p}`))),
        submit('Make role'),
      );
      onSubmit(newRole, async (form) => {
        const permissions = [...form.querySelectorAll<HTMLInputElement>('input[name="permissions"]:checked')].map((i) => i.value);
        await call('POST', `${base}/roles`, { name: formValues(form).name, permissions });
        reload('The role is made.');
      });
      sections.push(newRole);
    }
    if (mine.has('org:settings')) {
      const rename = h('form', {}, h('h2', {}, 'Settings'), field({ name: 'name', label: 'Organization name', value: org.name, id: 'f-org-name', maxlength: 100 }), field({ name: 'slug', label: 'Organization slug', value: org.slug, id: 'f-org-slug' }), submit('Save settings'));
      onSubmit(rename, async (form) => {
        await call<Org>('PATCH', base, formValues(form));
        reload('Saved.');
      });
      sections.push(rename);
    }
    if (mine.has('org:delete')) {
      sections.push(h('h2', {}, 'Delete the organization'), h('p', {}, 'Its memberships and invitations go with it. This needs a sign-in in the last 15 minutes.'), action(`Delete ${org.name}`, async () => {
        if (!confirm(`Delete ${org.name} for everyone?`)) return;
        await call('DELETE', base);
        if (auth.orgId === org.id) await switchOrganization(null);
        navigate('/orgs', `${org.name} was deleted.`);
      }, status));
    }
    return sections;
  },
};

const PENDING_INVITATION = 'ums-pending-invitation';

export const acceptInvitationPage: Page = {
  title: 'Accept the invitation',
  async render() {
    // The token is in the fragment (it never reaches a server log); kept for after a sign-in.
    const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
    if (fromLink) {
      sessionStorage.setItem(PENDING_INVITATION, fromLink);
      history.replaceState(null, '', '/accept-invitation');
    }
    const token = sessionStorage.getItem(PENDING_INVITATION);
    if (!token) return [heading('Accept the invitation'), h('p', {}, 'Open the link in the invitation mail.')];
    if (!auth.signedIn) {
      return [
        heading('Accept the invitation'),
        h('p', {}, 'Sign in, or create an account with the address the invitation went to and confirm it; then open the link in the invitation again.'),
        h('p', {}, h('a', { href: '/sign-in' }, 'Sign in'), ' · ', h('a', { href: '/sign-up' }, 'Create an account')),
      ];
    }
    const status = h('p', { role: 'status' });
    const button = action('Accept and join', async () => {
      const joined = await call<Membership>('POST', '/v1/invitations/accept', { token });
      sessionStorage.removeItem(PENDING_INVITATION);
      navigate('/orgs', `You joined as ${joined.role}.`);
    }, status);
    return [heading('Accept the invitation'), h('p', {}, `You are signed in as ${auth.user?.username ?? ''}.`), button, status];
  },
};
