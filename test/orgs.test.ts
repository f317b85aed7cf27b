import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { buildApp } from '../src/app.js';
import { AdminService } from '../src/admin/service.js';
import { pruneOrgRows } from '../src/orgs/repository.js';
import type { App } from '../src/http/types.js';
import { bearer, login, problem, registerUser, startTestService, uniqueName, type TestService } from './helpers/app.js';
import { mailSettled, Outbox, tokenFrom, type ReceivedMail } from './helpers/mail.js';

interface Member {
  id: string;
  username: string;
  email: string;
  password: string;
  token: string;
  refreshToken: string;
  sessionId: string;
}

const ORG_LIMIT = 4;

describe('organizations (API-ORGS.md)', () => {
  let svc: TestService;
  const outbox = new Outbox();

  before(async () => {
    svc = await startTestService({ outboxDir: outbox.dir, orgLimitPerUser: ORG_LIMIT });
  });
  after(async () => {
    await svc.close();
    outbox.remove();
  });

  const call = (method: string, url: string, token?: string, payload?: unknown, app: App = svc.app) =>
    app.inject({ method: method as 'GET', url, headers: token ? bearer(token) : {}, ...(payload !== undefined ? { payload: payload as object } : {}) });

  async function lastMail(to: string): Promise<ReceivedMail> {
    await mailSettled(svc.app);
    const mail = (await outbox.messages(to)).at(-1);
    assert.ok(mail, `no mail to ${to}`);
    return mail;
  }

  /** A registered user, signed in; with `verified`, the address confirmed through the mailed link. */
  async function person({ verified = true, email, role }: { verified?: boolean; email?: string; role?: string } = {}): Promise<Member> {
    const username = uniqueName('org');
    const user = await registerUser(svc.app, { username, email: email ?? `${username}@example.com` });
    if (verified) {
      const res = await call('POST', '/v1/email-verifications', undefined, { token: tokenFrom(await lastMail(user.email), 'verify-email') });
      assert.equal(res.statusCode, 204, res.body);
    }
    // A service-wide role, granted as the operator does, before the first sign-in caches what the user holds.
    if (role) await new AdminService(svc.db).changeRole(user.username, role, true);
    const session = await login(svc.app, user);
    return { ...user, token: session.accessToken, refreshToken: session.refreshToken, sessionId: session.sessionId };
  }

  async function makeOrg(owner: Member, slug = uniqueName('o').replace(/_/g, '-')): Promise<{ id: string; slug: string }> {
    const res = await call('POST', '/v1/orgs', owner.token, { name: `Org ${slug}`, slug });
    assert.equal(res.statusCode, 201, res.body);
    return { id: res.json().id, slug };
  }

  function invitationToken(mail: ReceivedMail): string {
    const match = /http:\/\/localhost:3000\/accept-invitation#token=([A-Za-z0-9_-]+)/.exec(mail.text);
    assert.ok(match, `no invitation link in: ${mail.text}`);
    return match[1]!;
  }

  /** `who` joins `orgId` as `role` through an invitation, as a user would. */
  async function join(owner: Member, orgId: string, who: Member, role = 'member'): Promise<void> {
    const invited = await call('POST', `/v1/orgs/${orgId}/invitations`, owner.token, { email: who.email, role });
    assert.equal(invited.statusCode, 201, invited.body);
    const accepted = await call('POST', '/v1/invitations/accept', who.token, { token: invitationToken(await lastMail(who.email)) });
    assert.equal(accepted.statusCode, 200, accepted.body);
  }

  const roleOf = async (orgId: string, userId: string) =>
    (await svc.db.selectFrom('org_members').select('role').where('org_id', '=', orgId).where('user_id', '=', userId).executeTakeFirst())?.role;
  const orgEvents = async (event: string) =>
    (await svc.db.selectFrom('audit_events').select(['user_id', 'actor_id', 'details']).where('event', '=', event).orderBy('event_id').execute()).map((e) => ({
      user_id: e.user_id === null ? null : String(e.user_id),
      actor_id: e.actor_id === null ? null : String(e.actor_id),
      details: JSON.parse(e.details ?? '{}'),
    }));

  describe('making and reading', () => {
    it('when a user makes an organization, then 201 with the organization, the caller is its owner, and it is audited with its id', async () => {
      const owner = await person();
      const res = await call('POST', '/v1/orgs', owner.token, { name: 'Analytical Engines', slug: 'engines' });
      assert.equal(res.statusCode, 201, res.body);
      const org = res.json();
      assert.match(org.id, /^[0-9]+$/);
      assert.deepEqual({ ...org, id: undefined, created_at: undefined }, { id: undefined, name: 'Analytical Engines', slug: 'engines', created_at: undefined, members: 1 });
      assert.equal(res.headers.location, `/v1/orgs/${org.id}`);
      assert.equal(await roleOf(org.id, owner.id), 'owner');
      assert.deepEqual((await orgEvents('org_created')).at(-1), { user_id: owner.id, actor_id: null, details: { org_id: org.id, slug: 'engines' } });

      const mine = await call('GET', '/v1/orgs', owner.token);
      assert.equal(mine.statusCode, 200);
      assert.deepEqual(mine.json().orgs.map((o: { id: string; role: string }) => [o.id, o.role]), [[org.id, 'owner']]);
      const read = await call('GET', `/v1/orgs/${org.id}`, owner.token);
      assert.equal(read.statusCode, 200);
      assert.deepEqual(read.json(), org);
    });

    it('when the body is bad, then 400 validation_failed naming each field, and nothing is written', async () => {
      const owner = await person();
      const before = await svc.db.selectFrom('organizations').select('org_id').execute();
      for (const [body, fields] of [
        [{ name: '', slug: 'ok-slug' }, ['name']],
        [{ name: 'x'.repeat(101), slug: '-bad' }, ['name', 'slug']],
        [{ name: 'Fine', slug: 'UPPER' }, ['slug']],
        [{ name: 'Fine', slug: 'a' }, ['slug']],
        [{ name: 'Fine' }, ['slug']],
        [{ name: 'Fine', slug: 'fine-one', owner: '1' }, ['owner']],
      ] as const) {
        const res = await call('POST', '/v1/orgs', owner.token, body);
        assert.equal(res.statusCode, 400, JSON.stringify(body));
        const p = problem(res);
        assert.equal(p.code, 'validation_failed');
        for (const field of fields) assert.ok(p.errors?.some((e) => e.field.includes(field)), `${field} in ${res.body}`);
      }
      assert.deepEqual(await svc.db.selectFrom('organizations').select('org_id').execute(), before);
    });

    it('when the slug is in use, then 409 slug_taken, on making and on renaming', async () => {
      const owner = await person();
      const a = await makeOrg(owner);
      const b = await makeOrg(owner);
      assert.equal(problem(await call('POST', '/v1/orgs', owner.token, { name: 'Again', slug: a.slug })).code, 'slug_taken');
      const renamed = await call('PATCH', `/v1/orgs/${b.id}`, owner.token, { slug: a.slug });
      assert.equal(renamed.statusCode, 409);
      assert.equal(problem(renamed).code, 'slug_taken');
      const row = await svc.db.selectFrom('organizations').select('slug').where('org_id', '=', b.id).executeTakeFirstOrThrow();
      assert.equal(row.slug, b.slug);
    });

    it('when a user made ORG_LIMIT_PER_USER organizations, then the next is 403 org_limit_reached', async () => {
      const owner = await person();
      for (let i = 0; i < ORG_LIMIT; i++) await makeOrg(owner);
      const res = await call('POST', '/v1/orgs', owner.token, { name: 'One more', slug: uniqueName('x').replace(/_/g, '-') });
      assert.equal(res.statusCode, 403);
      assert.equal(problem(res).code, 'org_limit_reached');
      assert.equal((await call('GET', '/v1/orgs', owner.token)).json().orgs.length, ORG_LIMIT);
    });

    it('when a user one short of the limit makes six at once, then one is made and five are 403 org_limit_reached', async () => {
      const owner = await person();
      for (let i = 0; i < ORG_LIMIT - 1; i++) await makeOrg(owner);
      const answers = await Promise.all([1, 2, 3, 4, 5, 6].map(() => call('POST', '/v1/orgs', owner.token, { name: 'Racing', slug: uniqueName('r').replace(/_/g, '-') })));
      assert.deepEqual(answers.map((a) => a.statusCode).sort(), [201, 403, 403, 403, 403, 403], answers.map((a) => a.body).join(' '));
      assert.equal((await svc.db.selectFrom('organizations').select('org_id').where('created_by', '=', owner.id).execute()).length, ORG_LIMIT);
    });

    it('when an owner renames the organization, then 200 with the new name and slug, audited', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const res = await call('PATCH', `/v1/orgs/${org.id}`, owner.token, { name: 'Renamed', slug: `${org.slug}-2` });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().name, 'Renamed');
      assert.equal(res.json().slug, `${org.slug}-2`);
      assert.equal((await orgEvents('org_updated')).at(-1)?.details.org_id, org.id);
      assert.equal(problem(await call('PATCH', `/v1/orgs/${org.id}`, owner.token, {})).code, 'validation_failed');
    });
  });

  describe('who may do what', () => {
    let owner: Member;
    let member: Member;
    let stranger: Member;
    let target: Member;
    let org: { id: string; slug: string };
    // Every organization route, with what it needs beyond membership.
    const routes = (id: string, userId: string): Array<[string, string, unknown, boolean]> => [
      ['GET', `/v1/orgs/${id}`, undefined, false],
      ['PATCH', `/v1/orgs/${id}`, { name: 'Taken over' }, true],
      ['DELETE', `/v1/orgs/${id}`, undefined, true],
      ['GET', `/v1/orgs/${id}/members`, undefined, false],
      ['PATCH', `/v1/orgs/${id}/members/${userId}`, { role: 'admin' }, true],
      ['DELETE', `/v1/orgs/${id}/members/${userId}`, undefined, true],
      ['POST', `/v1/orgs/${id}/invitations`, { email: 'someone@example.com', role: 'member' }, true],
      ['GET', `/v1/orgs/${id}/invitations`, undefined, true],
      ['DELETE', `/v1/orgs/${id}/invitations/1`, undefined, true],
      ['GET', `/v1/orgs/${id}/roles`, undefined, false],
      ['POST', `/v1/orgs/${id}/roles`, { name: 'auditor', permissions: ['org:read'] }, true],
      ['DELETE', `/v1/orgs/${id}/roles/auditor`, undefined, true],
    ];

    before(async () => {
      owner = await person();
      member = await person();
      stranger = await person();
      target = await person();
      org = await makeOrg(owner);
      await join(owner, org.id, member);
      await join(owner, org.id, target);
    });

    it('when a non-member calls any organization route, then 404 not_found, the same answer as for an organization that does not exist', async () => {
      const snapshot = async () => ({
        orgs: await svc.db.selectFrom('organizations').selectAll().where('org_id', '=', org.id).execute(),
        members: await svc.db.selectFrom('org_members').selectAll().where('org_id', '=', org.id).orderBy('user_id').execute(),
      });
      const before = await snapshot();
      for (const [method, url, body] of routes(org.id, target.id)) {
        const res = await call(method, url, stranger.token, body);
        assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
        const missing = await call(method, url.replace(`/orgs/${org.id}`, '/orgs/999999999'), stranger.token, body);
        assert.deepEqual(problem(res), problem(missing), `${method} ${url}`);
        assert.equal(problem(await call(method, url.replace(`/orgs/${org.id}`, '/orgs/not-an-id'), stranger.token, body)).code, 'not_found');
      }
      assert.equal(problem(await call('POST', '/v1/sessions/organization', stranger.token, { org_id: org.id })).code, 'not_found');
      assert.deepEqual(await snapshot(), before);
    });

    it('when a member without the permission calls a route that needs one, then 403 forbidden naming it; reading is allowed', async () => {
      const before = await svc.db.selectFrom('org_members').selectAll().where('org_id', '=', org.id).orderBy('user_id').execute();
      for (const [method, url, body, needsMore] of routes(org.id, target.id)) {
        const res = await call(method, url, member.token, body);
        if (needsMore) {
          assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
          assert.equal(problem(res).code, 'forbidden');
        } else assert.equal(res.statusCode, 200, `${method} ${url}: ${res.body}`);
      }
      assert.deepEqual(await svc.db.selectFrom('org_members').selectAll().where('org_id', '=', org.id).orderBy('user_id').execute(), before);
      assert.equal((await svc.db.selectFrom('organizations').select('name').where('org_id', '=', org.id).executeTakeFirstOrThrow()).name, `Org ${org.slug}`);
    });

    it('when a member tries to raise its own role, then 403 and the role stays', async () => {
      const res = await call('PATCH', `/v1/orgs/${org.id}/members/${member.id}`, member.token, { role: 'owner' });
      assert.equal(res.statusCode, 403);
      assert.equal(await roleOf(org.id, member.id), 'member');
    });

    it('when an admin changes roles, then only roles below its own: member to a custom role yes; itself or anyone to admin or owner no; an owner no', async () => {
      const admin = await person();
      const other = await person();
      await join(owner, org.id, admin, 'admin');
      await join(owner, org.id, other);
      assert.equal((await call('POST', `/v1/orgs/${org.id}/roles`, owner.token, { name: 'reader', permissions: ['org:read'] })).statusCode, 201);
      const ok = await call('PATCH', `/v1/orgs/${org.id}/members/${other.id}`, admin.token, { role: 'reader' });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.deepEqual({ ...(ok.json() as object), joined_at: undefined }, { user: { id: other.id, username: other.username, name: 'Test User', email: other.email }, role: 'reader', joined_at: undefined });
      for (const [target, role] of [
        [admin.id, 'owner'],
        [other.id, 'admin'],
        [other.id, 'owner'],
        [owner.id, 'member'],
      ] as const) {
        const res = await call('PATCH', `/v1/orgs/${org.id}/members/${target}`, admin.token, { role });
        // The last owner's demotion is judged first (409); the rest is the role rule (403).
        if (target === owner.id) assert.equal(problem(res).code, 'last_owner');
        else assert.equal(problem(res).code, 'forbidden', `${target} → ${role}: ${res.body}`);
      }
      assert.equal(await roleOf(org.id, admin.id), 'admin');
      assert.equal(await roleOf(org.id, other.id), 'reader');
      assert.equal(problem(await call('PATCH', `/v1/orgs/${org.id}/members/${other.id}`, owner.token, { role: 'nosuchrole' })).code, 'validation_failed');
      assert.equal(problem(await call('PATCH', `/v1/orgs/${org.id}/members/${stranger.id}`, owner.token, { role: 'member' })).code, 'not_found');
      // An admin may not remove an owner, nor another admin; the owner may.
      assert.equal(problem(await call('DELETE', `/v1/orgs/${org.id}/members/${owner.id}`, admin.token)).code, 'last_owner');
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}/members/${other.id}`, admin.token)).statusCode, 204);
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}/members/${admin.id}`, owner.token)).statusCode, 204);
      assert.equal(await roleOf(org.id, admin.id), undefined);
      assert.equal((await orgEvents('org_member_removed')).at(-1)?.details.org_id, org.id);
      assert.equal((await orgEvents('org_member_role_changed')).at(-1)?.actor_id, admin.id);
    });
  });

  describe('custom roles', () => {
    it('when custom roles are made and deleted, then no broader than the maker, unique, built-ins kept, and one in use stays', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const admin = await person();
      await join(owner, org.id, admin, 'admin');
      const made = await call('POST', `/v1/orgs/${org.id}/roles`, admin.token, { name: 'inviter', permissions: ['org:read', 'org:members'] });
      assert.equal(made.statusCode, 201, made.body);
      assert.deepEqual(made.json().roles.find((r: { name: string }) => r.name === 'inviter'), { name: 'inviter', permissions: ['org:members', 'org:read'], builtin: false });
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/roles`, admin.token, { name: 'deleter', permissions: ['org:delete'] })).code, 'forbidden');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/roles`, owner.token, { name: 'inviter', permissions: ['org:read'] })).code, 'role_exists');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/roles`, owner.token, { name: 'member', permissions: ['org:read'] })).code, 'role_exists');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/roles`, owner.token, { name: 'x', permissions: ['org:fly'] })).code, 'validation_failed');
      assert.equal(problem(await call('DELETE', `/v1/orgs/${org.id}/roles/admin`, owner.token)).code, 'role_builtin');
      // A holder of the custom role gets its permissions: it may invite, to roles below its own.
      const holder = await person();
      await join(owner, org.id, holder, 'inviter');
      assert.equal((await call('GET', `/v1/orgs/${org.id}/invitations`, holder.token)).statusCode, 200);
      assert.equal((await call('POST', `/v1/orgs/${org.id}/invitations`, holder.token, { email: 'new@example.com', role: 'member' })).statusCode, 201);
      assert.equal(problem(await call('PATCH', `/v1/orgs/${org.id}`, holder.token, { name: 'No' })).code, 'forbidden');
      const inUse = await call('DELETE', `/v1/orgs/${org.id}/roles/inviter`, owner.token);
      assert.equal(problem(inUse).code, 'validation_failed');
      assert.equal((await call('PATCH', `/v1/orgs/${org.id}/members/${holder.id}`, owner.token, { role: 'member' })).statusCode, 200);
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}/roles/inviter`, owner.token)).statusCode, 204);
      assert.equal(problem(await call('DELETE', `/v1/orgs/${org.id}/roles/inviter`, owner.token)).code, 'not_found');
      assert.equal((await svc.db.selectFrom('org_roles').select('name').where('org_id', '=', org.id).execute()).length, 0);
    });
  });

  describe('owners', () => {
    it('when the last owner demotes or removes itself, then 409 last_owner and nothing changes; with a second owner it may', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      assert.equal(problem(await call('PATCH', `/v1/orgs/${org.id}/members/${owner.id}`, owner.token, { role: 'admin' })).code, 'last_owner');
      assert.equal(problem(await call('DELETE', `/v1/orgs/${org.id}/members/${owner.id}`, owner.token)).code, 'last_owner');
      assert.equal(await roleOf(org.id, owner.id), 'owner');
      const second = await person();
      await join(owner, org.id, second, 'owner');
      assert.equal((await call('PATCH', `/v1/orgs/${org.id}/members/${owner.id}`, owner.token, { role: 'admin' })).statusCode, 200);
      assert.equal(await roleOf(org.id, owner.id), 'admin');
    });

    it('when the two owners demote each other at the same time, then one wins, the other is 409 last_owner, and one owner is left', async () => {
      for (let round = 0; round < 3; round++) {
        const a = await person();
        const b = await person();
        const org = await makeOrg(a);
        await join(a, org.id, b, 'owner');
        const [ab, ba] = await Promise.all([
          call('PATCH', `/v1/orgs/${org.id}/members/${b.id}`, a.token, { role: 'member' }),
          call('PATCH', `/v1/orgs/${org.id}/members/${a.id}`, b.token, { role: 'member' }),
        ]);
        assert.deepEqual([ab.statusCode, ba.statusCode].sort(), [200, 409], `${ab.body} ${ba.body}`);
        assert.equal(problem(ab.statusCode === 409 ? ab : ba).code, 'last_owner');
        const owners = await svc.db.selectFrom('org_members').select('user_id').where('org_id', '=', org.id).where('role', '=', 'owner').execute();
        assert.equal(owners.length, 1);
      }
    });
  });

  describe('members', () => {
    it('when members are listed, then newest first, paged with limit and before', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const others = [await person(), await person()];
      for (const o of others) await join(owner, org.id, o);
      const first = await call('GET', `/v1/orgs/${org.id}/members?limit=2`, owner.token);
      assert.equal(first.statusCode, 200);
      assert.deepEqual(first.json().members.map((m: { user: { id: string } }) => m.user.id), [others[1]!.id, others[0]!.id]);
      assert.ok(first.json().next);
      const second = await call('GET', `/v1/orgs/${org.id}/members?limit=2&before=${first.json().next}`, owner.token);
      assert.deepEqual(second.json().members.map((m: { user: { id: string }; role: string }) => [m.user.id, m.role]), [[owner.id, 'owner']]);
      assert.equal(second.json().next, null);
      assert.equal(problem(await call('GET', `/v1/orgs/${org.id}/members?limit=0`, owner.token)).code, 'validation_failed');
    });

    it('when a member leaves, then 204 with no permission needed, audited as left', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const member = await person();
      await join(owner, org.id, member);
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}/members/${member.id}`, member.token)).statusCode, 204);
      assert.equal(await roleOf(org.id, member.id), undefined);
      assert.deepEqual((await orgEvents('org_member_removed')).at(-1), { user_id: member.id, actor_id: null, details: { org_id: org.id, role: 'member', left: true } });
      assert.equal((await call('GET', `/v1/orgs/${org.id}`, member.token)).statusCode, 404);
    });
  });

  describe('invitations', () => {
    it('when a member is invited, then 201, one mail with the link in the fragment, the token stored only hashed, pending until accepted', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const invitee = await person();
      const res = await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: invitee.email, role: 'member' });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['email', 'expires_at', 'id', 'role']);
      assert.equal(body.email, invitee.email);
      assert.equal(Date.parse(body.expires_at) - svc.clock.now() > 6.9 * 86_400_000, true);
      const mail = await lastMail(invitee.email);
      assert.equal(mail.subject, `You are invited to join Org ${org.slug}`);
      const token = invitationToken(mail);
      const row = await svc.db.selectFrom('org_invitations').selectAll().where('invitation_id', '=', body.id).executeTakeFirstOrThrow();
      assert.notEqual(row.token_hash, token);
      assert.ok(!JSON.stringify(body).includes(token));
      const pending = await call('GET', `/v1/orgs/${org.id}/invitations`, owner.token);
      assert.deepEqual(pending.json().invitations, [body]);
      assert.equal((await orgEvents('org_invitation_created')).at(-1)?.details.org_id, org.id);

      const accepted = await call('POST', '/v1/invitations/accept', invitee.token, { token });
      assert.equal(accepted.statusCode, 200, accepted.body);
      assert.equal(accepted.json().role, 'member');
      assert.equal(accepted.json().user.id, invitee.id);
      assert.equal(await roleOf(org.id, invitee.id), 'member');
      assert.deepEqual((await call('GET', `/v1/orgs/${org.id}/invitations`, owner.token)).json().invitations, []);
      // Used: the link works once.
      assert.equal(problem(await call('POST', '/v1/invitations/accept', invitee.token, { token })).code, 'invalid_invitation');
      // Inviting a member is 409.
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: invitee.email.toUpperCase(), role: 'member' })).code, 'already_member');
    });

    it('when an invitation is accepted by another person, before the email is verified, after a newer one, after it expired or was withdrawn, then refused', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const invitee = await person({ verified: false });
      const other = await person();
      await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: invitee.email, role: 'member' });
      const first = invitationToken(await lastMail(invitee.email));
      // Another signed-in person holding the link: the email is not theirs.
      assert.equal(problem(await call('POST', '/v1/invitations/accept', other.token, { token: first })).code, 'invalid_invitation');
      // The invited person, address not verified yet.
      const unverified = await call('POST', '/v1/invitations/accept', invitee.token, { token: first });
      assert.equal(unverified.statusCode, 403);
      assert.equal(problem(unverified).code, 'email_not_verified');
      // Superseded by a newer invitation to the same address.
      await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: invitee.email, role: 'admin' });
      const second = invitationToken(await lastMail(invitee.email));
      assert.notEqual(second, first);
      const verify = await call('POST', '/v1/email-verifications', undefined, { token: tokenFrom((await outbox.messages(invitee.email)).find((m) => m.subject === 'Confirm your email address')!, 'verify-email') });
      assert.equal(verify.statusCode, 204);
      assert.equal(problem(await call('POST', '/v1/invitations/accept', invitee.token, { token: first })).code, 'invalid_invitation');
      // Withdrawn.
      const [pending] = (await call('GET', `/v1/orgs/${org.id}/invitations`, owner.token)).json().invitations;
      assert.equal(pending.role, 'admin');
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}/invitations/${pending.id}`, owner.token)).statusCode, 204);
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}/invitations/${pending.id}`, owner.token)).statusCode, 404);
      assert.equal(problem(await call('POST', '/v1/invitations/accept', invitee.token, { token: second })).code, 'invalid_invitation');
      // Unknown and malformed tokens.
      for (const token of ['nonsense', '', 'x'.repeat(500)]) assert.equal(problem(await call('POST', '/v1/invitations/accept', invitee.token, { token })).code, 'invalid_invitation');
      // Expired: made 7 days and a second ago (the clock moved back for the invitation only, as
      // sessions are stamped by the database's clock).
      const WEEK = 7 * 86_400_000 + 1000;
      svc.clock.advance(-WEEK);
      try {
        assert.equal((await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: invitee.email, role: 'member' })).statusCode, 201);
      } finally {
        svc.clock.advance(WEEK);
      }
      const third = invitationToken(await lastMail(invitee.email));
      assert.equal(problem(await call('POST', '/v1/invitations/accept', invitee.token, { token: third })).code, 'invalid_invitation');
      assert.deepEqual((await call('GET', `/v1/orgs/${org.id}/invitations`, owner.token)).json().invitations, []);
      assert.equal(await roleOf(org.id, invitee.id), undefined);
      assert.equal(await roleOf(org.id, other.id), undefined);
    });

    it('when a member accepts an invitation sent to the address it moved to, then 409 already_member and the invitation stays', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const member = await person();
      await join(owner, org.id, member);
      const newAddress = `${uniqueName('moved')}@example.com`;
      await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: newAddress, role: 'admin' });
      const token = invitationToken(await lastMail(newAddress));
      const moved = await call('PATCH', '/v1/users/me', member.token, { email: newAddress, current_password: member.password });
      assert.equal(moved.statusCode, 200, moved.body);
      assert.equal((await call('POST', '/v1/email-verifications', undefined, { token: tokenFrom(await lastMail(newAddress), 'verify-email') })).statusCode, 204);
      const res = await call('POST', '/v1/invitations/accept', member.token, { token });
      assert.equal(res.statusCode, 409);
      assert.equal(problem(res).code, 'already_member');
      assert.equal(await roleOf(org.id, member.id), 'member');
      assert.equal((await call('GET', `/v1/orgs/${org.id}/invitations`, owner.token)).json().invitations.length, 1);
    });

    it('when an admin invites to a role not below its own, then 403; an unknown role is 400', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const admin = await person();
      await join(owner, org.id, admin, 'admin');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/invitations`, admin.token, { email: 'a@example.com', role: 'owner' })).code, 'forbidden');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/invitations`, admin.token, { email: 'a@example.com', role: 'admin' })).code, 'forbidden');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/invitations`, admin.token, { email: 'a@example.com', role: 'ghost' })).code, 'validation_failed');
      assert.equal(problem(await call('POST', `/v1/orgs/${org.id}/invitations`, admin.token, { email: 'not an email', role: 'member' })).code, 'validation_failed');
      assert.equal((await call('POST', `/v1/orgs/${org.id}/invitations`, admin.token, { email: 'a@example.com', role: 'member' })).statusCode, 201);
    });

    it('when a person without an account gets an invitation, then they sign up with that address, verify it, and join from the link', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const email = `${uniqueName('newcomer')}@example.com`;
      await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email, role: 'member' });
      const token = invitationToken(await lastMail(email));
      const newcomer = await person({ email });
      const res = await call('POST', '/v1/invitations/accept', newcomer.token, { token });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(await roleOf(org.id, newcomer.id), 'member');
      assert.equal((await orgEvents('org_member_added')).at(-1)?.details.org_id, org.id);
    });
  });

  describe('tokens that speak for an organization', () => {
    it('when a member switches, then the access token carries org_id and org_role, refreshes keep them, and null clears them', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const res = await call('POST', '/v1/sessions/organization', owner.token, { org_id: org.id });
      assert.equal(res.statusCode, 200, res.body);
      const pair = res.json();
      assert.equal(pair.session.id, owner.sessionId);
      assert.deepEqual([decodeJwt(pair.access_token).org_id, decodeJwt(pair.access_token).org_role], [org.id, 'owner']);
      assert.equal((await call('GET', '/v1/users/me', pair.access_token)).statusCode, 200);
      // The refresh token before the switch is used up.
      const refreshed = await call('POST', '/v1/sessions/refresh', undefined, { refresh_token: pair.refresh_token });
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      assert.deepEqual([decodeJwt(refreshed.json().access_token).org_id, decodeJwt(refreshed.json().access_token).org_role], [org.id, 'owner']);
      const cleared = await call('POST', '/v1/sessions/organization', refreshed.json().access_token, { org_id: null });
      assert.equal(cleared.statusCode, 200);
      assert.equal(decodeJwt(cleared.json().access_token).org_id, undefined);
      const later = await call('POST', '/v1/sessions/refresh', undefined, { refresh_token: cleared.json().refresh_token });
      assert.equal(decodeJwt(later.json().access_token).org_id, undefined);
      assert.equal((await orgEvents('org_switched')).at(-1)?.details.org_id, 'none');
      assert.equal(problem(await call('POST', '/v1/sessions/organization', owner.token, { org_id: 'abc' })).code, 'validation_failed');
    });

    it('when a member is removed or its role lowered, then its token for the organization is refused at the next request, here and at a second instance within 1 s', async () => {
      const other = await buildApp({ config: svc.config, db: svc.handle });
      try {
        const owner = await person();
        const org = await makeOrg(owner);
        const member = await person();
        await join(owner, org.id, member, 'admin');
        const switched = (await call('POST', '/v1/sessions/organization', member.token, { org_id: org.id })).json();
        assert.equal(decodeJwt(switched.access_token).org_role, 'admin');
        assert.equal((await call('GET', `/v1/orgs/${org.id}/invitations`, switched.access_token, undefined, other)).statusCode, 200); // cached there

        // A lowered role: refused here at once, there within a second; a refresh gives the new role.
        assert.equal((await call('PATCH', `/v1/orgs/${org.id}/members/${member.id}`, owner.token, { role: 'member' })).statusCode, 200);
        assert.equal(problem(await call('GET', '/v1/users/me', switched.access_token)).code, 'invalid_token');
        const start = Date.now();
        while ((await call('GET', '/v1/users/me', switched.access_token, undefined, other)).statusCode !== 401) {
          assert.ok(Date.now() - start < 1000, 'the second instance still accepts the token after 1 s');
          await new Promise((r) => setTimeout(r, 20));
        }
        const refreshed = (await call('POST', '/v1/sessions/refresh', undefined, { refresh_token: switched.refresh_token })).json();
        assert.equal(decodeJwt(refreshed.access_token).org_role, 'member');
        assert.equal((await call('GET', `/v1/orgs/${org.id}`, refreshed.access_token, undefined, other)).statusCode, 200); // cached there

        // Removed: refused at the second instance within a second; a refresh speaks for no organization.
        assert.equal((await call('DELETE', `/v1/orgs/${org.id}/members/${member.id}`, owner.token)).statusCode, 204);
        const removedAt = Date.now();
        while ((await call('GET', '/v1/users/me', refreshed.access_token, undefined, other)).statusCode !== 401) {
          assert.ok(Date.now() - removedAt < 1000, 'the second instance still accepts the token after 1 s');
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(problem(await call('GET', `/v1/orgs/${org.id}`, refreshed.access_token)).code, 'invalid_token');
        const after = (await call('POST', '/v1/sessions/refresh', undefined, { refresh_token: refreshed.refresh_token })).json();
        assert.equal(decodeJwt(after.access_token).org_id, undefined);
        assert.equal((await call('GET', '/v1/users/me', after.access_token)).statusCode, 200);
        assert.equal((await call('GET', `/v1/orgs/${org.id}`, after.access_token, undefined, other)).statusCode, 404);
      } finally {
        await other.close();
      }
    });
  });

  describe('deleting', () => {
    it('when the owner deletes the organization, then it needs a recent sign-in, and it goes with its memberships, invitations and the tokens that speak for it', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const member = await person();
      await join(owner, org.id, member);
      await call('POST', `/v1/orgs/${org.id}/invitations`, owner.token, { email: 'later@example.com', role: 'member' });
      const memberToken = (await call('POST', '/v1/sessions/organization', member.token, { org_id: org.id })).json().access_token;
      await svc.db.updateTable('user_sessions').set({ created_at: new Date(svc.clock.now() - 20 * 60_000) }).where('session_id', '=', owner.sessionId).execute();
      const stale = await call('DELETE', `/v1/orgs/${org.id}`, owner.token);
      assert.equal(problem(stale).code, 'reauthentication_required');
      const fresh = await login(svc.app, owner);
      assert.equal((await call('DELETE', `/v1/orgs/${org.id}`, fresh.accessToken)).statusCode, 204);
      for (const table of ['organizations', 'org_members', 'org_invitations', 'session_orgs'] as const) {
        const rows = await svc.db.selectFrom(table).select('org_id').where('org_id', '=', org.id).execute();
        assert.equal(rows.length, 0, table);
      }
      assert.equal(problem(await call('GET', '/v1/users/me', memberToken)).code, 'invalid_token');
      assert.equal((await call('GET', `/v1/orgs/${org.id}`, fresh.accessToken)).statusCode, 404);
      assert.equal((await orgEvents('org_deleted')).at(-1)?.details.org_id, org.id);
    });

    it('when the only owner of an organization deletes the account, then 409 last_owner names it, until ownership passes', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const member = await person();
      await join(owner, org.id, member);
      const refused = await call('DELETE', '/v1/users/me', owner.token, { current_password: owner.password });
      assert.equal(refused.statusCode, 409);
      const p = problem(refused);
      assert.equal(p.code, 'last_owner');
      assert.match(p.detail, new RegExp(org.slug));
      assert.ok(await svc.db.selectFrom('users').select('user_id').where('user_id', '=', owner.id).executeTakeFirst());
      assert.equal((await call('PATCH', `/v1/orgs/${org.id}/members/${member.id}`, owner.token, { role: 'owner' })).statusCode, 200);
      assert.equal((await call('DELETE', '/v1/users/me', owner.token, { current_password: owner.password })).statusCode, 204);
      assert.equal(await roleOf(org.id, owner.id), undefined);
      assert.equal(await roleOf(org.id, member.id), 'owner');
    });
  });

  describe('pruning', () => {
    it('when the pruning job runs, then the organization choices of sessions that are gone go, and live ones stay', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      assert.equal((await call('POST', '/v1/sessions/organization', owner.token, { org_id: org.id })).statusCode, 200);
      await svc.db.insertInto('session_orgs').values({ session_id: '999999999', org_id: org.id }).execute();
      await pruneOrgRows(svc.db, svc.clock.now());
      const left = await svc.db.selectFrom('session_orgs').select('session_id').where('org_id', '=', org.id).execute();
      assert.deepEqual(left.map((r) => String(r.session_id)), [owner.sessionId]);
    });
  });

  describe('admin API', () => {
    it('when an administrator lists organizations, then each with its member count; one by id; an unknown id is 404', async () => {
      const owner = await person();
      const org = await makeOrg(owner);
      const admin = await person({ role: 'support' });
      const list = await call('GET', '/v1/admin/orgs?limit=100', admin.token);
      assert.equal(list.statusCode, 200, list.body);
      assert.equal(list.json().orgs.find((o: { id: string }) => o.id === org.id)?.members, 1);
      const one = await call('GET', `/v1/admin/orgs/${org.id}`, admin.token);
      assert.equal(one.json().slug, org.slug);
      assert.equal(problem(await call('GET', '/v1/admin/orgs/999999999', admin.token)).code, 'not_found');
      assert.equal(problem(await call('GET', '/v1/admin/orgs', owner.token)).code, 'forbidden');
    });
  });
});
