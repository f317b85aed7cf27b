import type { Kysely, Transaction } from 'kysely';
import { insertReturning } from '../db/returning.js';
import type { Database } from '../db/schema.js';
import { OWNER } from './permissions.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** The SQL of the organizations feature's own tables (migration 0017). */

export interface OrgRow {
  org_id: string;
  name: string;
  slug: string;
  created_at: Date;
  members: number;
}

const ORG_COLUMNS = ['organizations.org_id', 'organizations.name', 'organizations.slug', 'organizations.created_at'] as const;

function withMemberCount(db: Queryable) {
  return db
    .selectFrom('organizations')
    .select(ORG_COLUMNS)
    .select((eb) => eb.selectFrom('org_members').select((e) => e.fn.countAll<string>().as('n')).whereRef('org_members.org_id', '=', 'organizations.org_id').as('members'));
}

function toOrgRow(row: { org_id: string; name: string; slug: string; created_at: Date; members: string | number | null }): OrgRow {
  return { org_id: String(row.org_id), name: row.name, slug: row.slug, created_at: row.created_at, members: Number(row.members ?? 0) };
}

export async function findOrg(db: Queryable, orgId: string): Promise<OrgRow | undefined> {
  const row = await withMemberCount(db).where('organizations.org_id', '=', orgId).executeTakeFirst();
  return row && toOrgRow(row);
}

/** Every organization, newest first, `limit` at a time before the id `before` (the admin API). */
export async function listAllOrgs(db: Queryable, limit: number, before?: string): Promise<{ orgs: OrgRow[]; next: string | null }> {
  const rows = await withMemberCount(db)
    .$if(before !== undefined, (q) => q.where('organizations.org_id', '<', before!))
    .orderBy('organizations.org_id', 'desc')
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit).map(toOrgRow);
  return { orgs: page, next: rows.length > limit ? page.at(-1)!.org_id : null };
}

export async function insertOrg(trx: Transaction<Database>, values: { name: string; slug: string; createdBy: string }): Promise<string> {
  const row = await insertReturning(
    trx,
    trx.insertInto('organizations').values({ name: values.name, slug: values.slug, created_by: values.createdBy }),
    ['org_id'],
    (id) => trx.selectFrom('organizations').select('org_id').where('org_id', '=', id),
  );
  return String(row.org_id);
}

export async function countOrgsCreatedBy(db: Queryable, userId: string): Promise<number> {
  const row = await db.selectFrom('organizations').select((eb) => eb.fn.countAll<string>().as('n')).where('created_by', '=', userId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Takes the organization's row lock: every change of its memberships takes it first, so two
 * changes (two owners demoting each other at once) are decided one after the other, the second
 * seeing the first's result. Answers whether the organization exists.
 */
export async function lockOrg(trx: Transaction<Database>, orgId: string): Promise<boolean> {
  const row = await trx.selectFrom('organizations').select('org_id').where('org_id', '=', orgId).forUpdate().executeTakeFirst();
  return row !== undefined;
}

export async function updateOrg(trx: Transaction<Database>, orgId: string, changes: { name?: string | undefined; slug?: string | undefined }): Promise<void> {
  const set: { name?: string; slug?: string } = {};
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.slug !== undefined) set.slug = changes.slug;
  if (Object.keys(set).length) await trx.updateTable('organizations').set(set).where('org_id', '=', orgId).execute();
}

/** The organization and everything of it: memberships, roles, invitations, sessions' choice of it. */
export async function deleteOrg(trx: Transaction<Database>, orgId: string): Promise<void> {
  await trx.deleteFrom('session_orgs').where('org_id', '=', orgId).execute();
  await trx.deleteFrom('org_invitations').where('org_id', '=', orgId).execute();
  await trx.deleteFrom('org_members').where('org_id', '=', orgId).execute();
  await trx.deleteFrom('org_roles').where('org_id', '=', orgId).execute();
  await trx.deleteFrom('organizations').where('org_id', '=', orgId).execute();
}

/** The organizations `userId` belongs to, with their role, by name. */
export async function listOrgsOf(db: Queryable, userId: string): Promise<Array<OrgRow & { role: string }>> {
  const rows = await withMemberCount(db)
    .innerJoin('org_members as mine', 'mine.org_id', 'organizations.org_id')
    .select('mine.role')
    .where('mine.user_id', '=', userId)
    .orderBy('organizations.name')
    .orderBy('organizations.org_id')
    .execute();
  return rows.map((r) => ({ ...toOrgRow(r), role: r.role }));
}

export interface MemberRow {
  user_id: string;
  username: string;
  name: string;
  email: string;
  role: string;
  joined_at: Date;
}

const MEMBER_COLUMNS = ['org_members.user_id', 'users.username', 'users.name', 'users.email', 'org_members.role', 'org_members.joined_at'] as const;

/** Members, newest first, `limit` at a time before the member `before` (the `next` of the page before). */
export async function listMembers(db: Queryable, orgId: string, limit: number, before?: string): Promise<{ members: MemberRow[]; next: string | null }> {
  const rows = await db
    .selectFrom('org_members')
    .innerJoin('users', 'users.user_id', 'org_members.user_id')
    .select(MEMBER_COLUMNS)
    .where('org_members.org_id', '=', orgId)
    .$if(before !== undefined, (q) => q.where('org_members.user_id', '<', before!))
    .orderBy('org_members.user_id', 'desc')
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit).map((r) => ({ ...r, user_id: String(r.user_id) }));
  return { members: page, next: rows.length > limit ? page.at(-1)!.user_id : null };
}

export async function findMember(db: Queryable, orgId: string, userId: string): Promise<MemberRow | undefined> {
  const row = await db
    .selectFrom('org_members')
    .innerJoin('users', 'users.user_id', 'org_members.user_id')
    .select(MEMBER_COLUMNS)
    .where('org_members.org_id', '=', orgId)
    .where('org_members.user_id', '=', userId)
    .executeTakeFirst();
  return row && { ...row, user_id: String(row.user_id) };
}

/** The owners' ids (read under lockOrg, they are current). */
export async function ownersOf(db: Queryable, orgId: string): Promise<string[]> {
  const rows = await db.selectFrom('org_members').select('user_id').where('org_id', '=', orgId).where('role', '=', OWNER).execute();
  return rows.map((r) => String(r.user_id));
}

export async function memberIds(db: Queryable, orgId: string): Promise<string[]> {
  const rows = await db.selectFrom('org_members').select('user_id').where('org_id', '=', orgId).execute();
  return rows.map((r) => String(r.user_id));
}

export async function insertMember(trx: Transaction<Database>, orgId: string, userId: string, role: string): Promise<void> {
  await trx.insertInto('org_members').values({ org_id: orgId, user_id: userId, role }).execute();
}

export async function setMemberRole(trx: Transaction<Database>, orgId: string, userId: string, role: string): Promise<void> {
  await trx.updateTable('org_members').set({ role }).where('org_id', '=', orgId).where('user_id', '=', userId).execute();
}

export async function deleteMember(trx: Transaction<Database>, orgId: string, userId: string): Promise<void> {
  await trx.deleteFrom('org_members').where('org_id', '=', orgId).where('user_id', '=', userId).execute();
  // The member's sessions speak for the organization no more.
  await trx
    .deleteFrom('session_orgs')
    .where('org_id', '=', orgId)
    .where('session_id', 'in', (eb) => eb.selectFrom('user_sessions').select('session_id').where('user_id', '=', userId))
    .execute();
}

/** An organization's custom roles: name → permissions. */
export async function customRoles(db: Queryable, orgIds: readonly string[]): Promise<Map<string, Map<string, string[]>>> {
  const byOrg = new Map<string, Map<string, string[]>>();
  if (orgIds.length === 0) return byOrg;
  const rows = await db.selectFrom('org_roles').select(['org_id', 'name', 'permissions']).where('org_id', 'in', [...orgIds]).execute();
  for (const row of rows) {
    const orgId = String(row.org_id);
    if (!byOrg.has(orgId)) byOrg.set(orgId, new Map());
    byOrg.get(orgId)!.set(row.name, row.permissions.split(' ').filter(Boolean));
  }
  return byOrg;
}

export async function insertCustomRole(trx: Transaction<Database>, orgId: string, name: string, permissions: readonly string[]): Promise<void> {
  await trx.insertInto('org_roles').values({ org_id: orgId, name, permissions: permissions.join(' ') }).execute();
}

export async function deleteCustomRole(trx: Transaction<Database>, orgId: string, name: string): Promise<boolean> {
  const result = await trx.deleteFrom('org_roles').where('org_id', '=', orgId).where('name', '=', name).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function roleInUse(db: Queryable, orgId: string, role: string): Promise<boolean> {
  const inUse = await db.selectFrom('org_members').select('user_id').where('org_id', '=', orgId).where('role', '=', role).limit(1).executeTakeFirst();
  if (inUse) return true;
  return (await db.selectFrom('org_invitations').select('invitation_id').where('org_id', '=', orgId).where('role', '=', role).limit(1).executeTakeFirst()) !== undefined;
}

/** A user's memberships: organization id → role (what the guard's cache holds). */
export async function membershipsOf(db: Queryable, userId: string): Promise<Map<string, string>> {
  const rows = await db.selectFrom('org_members').select(['org_id', 'role']).where('user_id', '=', userId).execute();
  return new Map(rows.map((r) => [String(r.org_id), r.role]));
}

export interface InvitationRow {
  invitation_id: string;
  org_id: string;
  email: string;
  role: string;
  expires_at: Date;
}

/** A new invitation replaces (supersedes) any earlier one to the same address for the organization. */
export async function insertInvitation(
  trx: Transaction<Database>,
  values: { orgId: string; email: string; emailKey: string; role: string; tokenHash: string; invitedBy: string; expiresAt: Date },
): Promise<InvitationRow> {
  await trx.deleteFrom('org_invitations').where('org_id', '=', values.orgId).where('email_key', '=', values.emailKey).execute();
  const columns = ['invitation_id', 'org_id', 'email', 'role', 'expires_at'] as const;
  const row = await insertReturning(
    trx,
    trx.insertInto('org_invitations').values({
      org_id: values.orgId,
      email: values.email,
      email_key: values.emailKey,
      role: values.role,
      token_hash: values.tokenHash,
      invited_by: values.invitedBy,
      expires_at: values.expiresAt,
    }),
    columns,
    (id) => trx.selectFrom('org_invitations').select(columns).where('invitation_id', '=', id),
  );
  return { ...row, invitation_id: String(row.invitation_id), org_id: String(row.org_id) };
}

export async function listPendingInvitations(db: Queryable, orgId: string, now: Date): Promise<InvitationRow[]> {
  const rows = await db
    .selectFrom('org_invitations')
    .select(['invitation_id', 'org_id', 'email', 'role', 'expires_at'])
    .where('org_id', '=', orgId)
    .where('expires_at', '>', now)
    .orderBy('invitation_id', 'desc')
    .execute();
  return rows.map((r) => ({ ...r, invitation_id: String(r.invitation_id), org_id: String(r.org_id) }));
}

export async function deleteInvitation(trx: Transaction<Database>, orgId: string, invitationId: string): Promise<InvitationRow | undefined> {
  const row = await trx
    .selectFrom('org_invitations')
    .select(['invitation_id', 'org_id', 'email', 'role', 'expires_at'])
    .where('org_id', '=', orgId)
    .where('invitation_id', '=', invitationId)
    .executeTakeFirst();
  if (!row) return undefined;
  await trx.deleteFrom('org_invitations').where('invitation_id', '=', invitationId).execute();
  return { ...row, invitation_id: String(row.invitation_id), org_id: String(row.org_id) };
}

export async function findInvitationByHash(db: Queryable, tokenHash: string): Promise<(InvitationRow & { email_key: string }) | undefined> {
  const row = await db
    .selectFrom('org_invitations')
    .select(['invitation_id', 'org_id', 'email', 'email_key', 'role', 'expires_at'])
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
  return row && { ...row, invitation_id: String(row.invitation_id), org_id: String(row.org_id) };
}

/** Uses the invitation up; false when another request used it first. */
export async function consumeInvitation(trx: Transaction<Database>, invitationId: string): Promise<boolean> {
  const result = await trx.deleteFrom('org_invitations').where('invitation_id', '=', invitationId).executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/** Expired invitations, and the organization choices of sessions that no longer exist. */
export async function pruneOrgRows(db: Queryable, now: number): Promise<void> {
  await db.deleteFrom('org_invitations').where('expires_at', '<', new Date(now)).execute();
  await db
    .deleteFrom('session_orgs')
    .where((eb) => eb.not(eb.exists(eb.selectFrom('user_sessions').select('user_sessions.session_id').whereRef('user_sessions.session_id', '=', 'session_orgs.session_id'))))
    .execute();
}

/** The organization the session speaks for, if any. */
export async function sessionOrgOf(db: Queryable, sessionId: string): Promise<string | undefined> {
  const row = await db.selectFrom('session_orgs').select('org_id').where('session_id', '=', sessionId).executeTakeFirst();
  return row && String(row.org_id);
}

export async function setSessionOrg(trx: Transaction<Database>, sessionId: string, orgId: string | null): Promise<void> {
  await trx.deleteFrom('session_orgs').where('session_id', '=', sessionId).execute();
  if (orgId !== null) await trx.insertInto('session_orgs').values({ session_id: sessionId, org_id: orgId }).execute();
}

/** Organizations whose only owner is `userId` (account deletion is refused while there are any). */
export async function soleOwnedOrgs(db: Queryable, userId: string): Promise<Array<{ org_id: string; slug: string }>> {
  const rows = await db
    .selectFrom('org_members as mine')
    .innerJoin('organizations', 'organizations.org_id', 'mine.org_id')
    .select(['organizations.org_id', 'organizations.slug'])
    .where('mine.user_id', '=', userId)
    .where('mine.role', '=', OWNER)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb.selectFrom('org_members as other').select('other.user_id').whereRef('other.org_id', '=', 'mine.org_id').where('other.role', '=', OWNER).where('other.user_id', '!=', userId),
        ),
      ),
    )
    .execute();
  return rows.map((r) => ({ org_id: String(r.org_id), slug: r.slug }));
}

/**
 * Account deletion: the user's memberships go (invitations they sent keep, unsigned). Their
 * sessions' choices of an organization go with the sessions, pruned by pruneOrgRows.
 */
export async function eraseMemberships(trx: Transaction<Database>, userId: string): Promise<void> {
  await trx.deleteFrom('org_members').where('user_id', '=', userId).execute();
  await trx.updateTable('org_invitations').set({ invited_by: null }).where('invited_by', '=', userId).execute();
  await trx.updateTable('organizations').set({ created_by: null }).where('created_by', '=', userId).execute();
}
