import { sql, type Kysely, type Transaction } from 'kysely';
import { dbNow, isMysql } from '../db/dialect.js';
import { withCustomPlans } from '../db/plans.js';
import type { Database } from '../db/schema.js';
import { lookupKey } from '../core/lookup-key.js';
import { userColumns, type UserRecord } from '../users/repository.js';
import { ADMIN_ROLE } from './permissions.js';

/** SQL of the administration feature: roles, who holds them, the admin search, admin events. */

type Queryable = Kysely<Database> | Transaction<Database>;

/** The roles a user holds, with the permissions stored for the ones made through the API. */
export async function rolesAndStoredPermissions(db: Queryable, userId: string): Promise<{ roles: string[]; stored: Map<string, string[]> }> {
  const rows = await db
    .selectFrom('user_roles')
    .leftJoin('role_permissions', 'role_permissions.role_name', 'user_roles.role_name')
    .select(['user_roles.role_name', 'role_permissions.permission'])
    .where('user_roles.user_id', '=', userId)
    .execute();
  const stored = new Map<string, string[]>();
  for (const row of rows) {
    const list = stored.get(row.role_name) ?? [];
    if (row.permission !== null) list.push(row.permission);
    stored.set(row.role_name, list);
  }
  return { roles: [...stored.keys()].sort(), stored };
}

/** Whether the user has a second factor: a confirmed TOTP factor or a passkey. */
export async function hasSecondFactor(db: Queryable, userId: string): Promise<boolean> {
  const row = await db
    .selectNoFrom((eb) => [
      eb.exists(eb.selectFrom('user_totp_factors').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null)).as('totp'),
      eb.exists(eb.selectFrom('user_passkeys').select('user_id').where('user_id', '=', userId)).as('passkey'),
    ])
    .executeTakeFirstOrThrow();
  return Boolean(Number(row.totp)) || Boolean(Number(row.passkey));
}

/**
 * The last-admin rule's lock: every transaction that could leave no admin (taking the role,
 * disabling or deleting a user) first locks the admin role's row, so two of them run one after
 * the other and the second sees what the first did (READ COMMITTED on every database). Answers
 * the enabled holders of admin, read after the lock (share-locked on MySQL/MariaDB too, which
 * alone would also make two concurrent demotions collide: one becomes a deadlock victim, retried).
 */
export async function lockAdmins(trx: Transaction<Database>): Promise<string[]> {
  await trx.selectFrom('roles').select('name').where('name', '=', ADMIN_ROLE).forUpdate().execute();
  const rows = await trx
    .selectFrom('user_roles')
    .innerJoin('users', 'users.user_id', 'user_roles.user_id')
    .select('user_roles.user_id')
    .where('user_roles.role_name', '=', ADMIN_ROLE)
    .where('users.disabled_at', 'is', null)
    .$if(isMysql(trx), (q) => q.modifyEnd(sql`lock in share mode`))
    .execute();
  return rows.map((r) => String(r.user_id));
}

export interface RoleRow {
  name: string;
  description: string;
  builtin: boolean;
  permissions: string[];
  holders: number;
}

/** Every role (or the ones named), with its stored permissions and how many users hold it. */
export async function listRoles(db: Queryable, names?: readonly string[]): Promise<RoleRow[]> {
  if (names && names.length === 0) return [];
  const roles = await db
    .selectFrom('roles')
    .select((eb) => [
      'roles.name',
      'roles.description',
      'roles.builtin',
      eb.selectFrom('user_roles').select((s) => s.fn.countAll<string>().as('n')).whereRef('user_roles.role_name', '=', 'roles.name').as('holders'),
    ])
    .$if(names !== undefined, (q) => q.where('roles.name', 'in', names!))
    .orderBy('roles.builtin', 'desc')
    .orderBy('roles.name')
    .execute();
  const permissions = await db
    .selectFrom('role_permissions')
    .select(['role_name', 'permission'])
    .$if(names !== undefined, (q) => q.where('role_name', 'in', names!))
    .orderBy('permission')
    .execute();
  return roles.map((r) => ({
    name: r.name,
    description: r.description,
    builtin: Boolean(r.builtin),
    permissions: permissions.filter((p) => p.role_name === r.name).map((p) => p.permission),
    holders: Number(r.holders ?? 0),
  }));
}

/** The stored permissions of the roles named (built-in roles have none stored). */
export async function storedPermissions(db: Queryable, names: readonly string[]): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  if (names.length === 0) return map;
  for (const row of await db.selectFrom('role_permissions').select(['role_name', 'permission']).where('role_name', 'in', names).execute()) {
    map.set(row.role_name, [...(map.get(row.role_name) ?? []), row.permission]);
  }
  return map;
}

export async function existingRoleNames(db: Queryable, names: readonly string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  return new Set((await db.selectFrom('roles').select('name').where('name', 'in', names).execute()).map((r) => r.name));
}

export async function insertRole(trx: Queryable, role: { name: string; description: string; permissions: readonly string[] }): Promise<void> {
  await trx.insertInto('roles').values({ name: role.name, description: role.description }).execute();
  if (role.permissions.length) await trx.insertInto('role_permissions').values(role.permissions.map((permission) => ({ role_name: role.name, permission }))).execute();
}

export async function updateRole(trx: Queryable, name: string, changes: { description?: string; permissions?: readonly string[] }): Promise<void> {
  await trx
    .updateTable('roles')
    .set({ updated_at: dbNow(trx), ...(changes.description !== undefined ? { description: changes.description } : {}) })
    .where('name', '=', name)
    .execute();
  if (changes.permissions !== undefined) {
    await trx.deleteFrom('role_permissions').where('role_name', '=', name).execute();
    if (changes.permissions.length) await trx.insertInto('role_permissions').values(changes.permissions.map((permission) => ({ role_name: name, permission }))).execute();
  }
}

/** The users holding a role, locking the role's row (a change to it waits for a grant in progress). */
export async function lockRoleHolders(trx: Transaction<Database>, name: string): Promise<{ exists: boolean; builtin: boolean; holders: string[] }> {
  const role = await trx.selectFrom('roles').select(['name', 'builtin']).where('name', '=', name).forUpdate().executeTakeFirst();
  if (!role) return { exists: false, builtin: false, holders: [] };
  const holders = await trx.selectFrom('user_roles').select('user_id').where('role_name', '=', name).execute();
  return { exists: true, builtin: Boolean(role.builtin), holders: holders.map((h) => String(h.user_id)) };
}

export async function deleteRole(trx: Queryable, name: string): Promise<void> {
  // user_roles and role_permissions go by ON DELETE CASCADE.
  await trx.deleteFrom('roles').where('name', '=', name).execute();
}

/** The user's roles, locking the user's row: changes of one user's roles run one at a time. */
export async function lockUserRoles(trx: Transaction<Database>, userId: string): Promise<string[] | undefined> {
  const user = await trx.selectFrom('users').select('user_id').where('user_id', '=', userId).forUpdate().executeTakeFirst();
  if (!user) return undefined;
  return (await trx.selectFrom('user_roles').select('role_name').where('user_id', '=', userId).orderBy('role_name').execute()).map((r) => r.role_name);
}

export async function replaceUserRoles(trx: Queryable, userId: string, before: readonly string[], after: readonly string[], grantedBy: string | null): Promise<void> {
  const taken = before.filter((r) => !after.includes(r));
  const given = after.filter((r) => !before.includes(r));
  if (taken.length) await trx.deleteFrom('user_roles').where('user_id', '=', userId).where('role_name', 'in', taken).execute();
  if (given.length) await trx.insertInto('user_roles').values(given.map((role_name) => ({ user_id: userId, role_name, granted_by: grantedBy }))).execute();
}

/** What the admin user object shows beyond the user's row. */
export interface AdminUserRow extends UserRecord {
  disabled_reason: string | null;
  roles: string[];
  totp: boolean;
  passkeys: number;
  has_password: boolean;
  last_sign_in_at: Date | null;
}

const flag = (value: unknown) => Number(value) === 1 || value === true;

/** The admin view of the users with these ids, in the order given (missing ids are left out). */
export async function adminUsers(db: Queryable, ids: readonly string[]): Promise<AdminUserRow[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('users')
    .select(userColumns.map((c) => `users.${c}` as const))
    .select((eb) => [
      'users.disabled_reason',
      eb
        .case()
        .when(eb.exists(eb.selectFrom('user_totp_factors as t').select('t.user_id').whereRef('t.user_id', '=', 'users.user_id').where('t.confirmed_at', 'is not', null)))
        .then(1)
        .else(0)
        .end()
        .as('totp'),
      eb
        .case()
        .when(eb.exists(eb.selectFrom('user_credentials as c').select('c.user_id').whereRef('c.user_id', '=', 'users.user_id').where('c.is_current', '=', true)))
        .then(1)
        .else(0)
        .end()
        .as('has_password'),
      eb.selectFrom('user_passkeys as p').select((s) => s.fn.countAll<string>().as('n')).whereRef('p.user_id', '=', 'users.user_id').as('passkeys'),
      eb.selectFrom('user_sessions as s').select((s) => s.fn.max('s.created_at').as('m')).whereRef('s.user_id', '=', 'users.user_id').as('last_sign_in_at'),
    ])
    .where('users.user_id', 'in', ids)
    .execute();
  const roles = await db.selectFrom('user_roles').select(['user_id', 'role_name']).where('user_id', 'in', ids).orderBy('role_name').execute();
  const byId = new Map(rows.map((r) => [String(r.user_id), r]));
  return ids.flatMap((id) => {
    const r = byId.get(id);
    if (!r) return [];
    const last = r.last_sign_in_at as Date | string | null;
    return [
      {
        ...r,
        totp: flag(r.totp),
        has_password: flag(r.has_password),
        passkeys: Number(r.passkeys ?? 0),
        last_sign_in_at: last === null ? null : new Date(last),
        roles: roles.filter((x) => String(x.user_id) === id).map((x) => x.role_name),
      },
    ];
  });
}

export interface UserSearch {
  q?: string;
  status?: 'active' | 'disabled';
  role?: string;
  emailVerified?: boolean;
  createdAfter?: Date;
  createdBefore?: Date;
  /** Only users with an id below this (the cursor). */
  beforeId?: string;
  limit: number;
}

const likeEscape = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Below this many characters a trigram index cannot help, and matches are many: one scan serves. */
const TRIGRAM = 3;

/**
 * The ids of the users matching, newest first (by id: ids are given in creation order, and a
 * unique, unchanging key is what keeps keyset paging from repeating or skipping a user). `q`
 * matches a username or an email that starts with it, or a name containing it, ignoring case.
 * One more id than `limit` tells whether there is a next page.
 *
 * From 3 characters on, each of the three matches is its own branch, newest first and limited,
 * and the branches are merged: each can use its index (text_pattern_ops for the prefixes,
 * pg_trgm's GIN index for the name where migration 0013 made it; the unique keys on MySQL), where
 * one OR of the three lets the planner walk the whole primary key when it misjudges how many
 * match. Shorter, or without `q`, one query walks the primary key backwards until the page is full.
 */
export async function searchUserIds(db: Queryable, search: UserSearch): Promise<string[]> {
  // Each search is planned for its own pattern: a generic plan could use no index for a LIKE.
  return search.q === undefined ? searchIn(db, search) : withCustomPlans(db, (q) => searchIn(q, search));
}

async function searchIn(db: Queryable, search: UserSearch): Promise<string[]> {
  const page = search.limit + 1;
  const filtered = () => {
    let query = db.selectFrom('users').select('users.user_id').orderBy('users.user_id', 'desc').limit(page);
    if (search.status === 'active') query = query.where('users.disabled_at', 'is', null);
    if (search.status === 'disabled') query = query.where('users.disabled_at', 'is not', null);
    if (search.role !== undefined) {
      const role = search.role;
      query = query.where((eb) => eb.exists(eb.selectFrom('user_roles').select('user_roles.user_id').whereRef('user_roles.user_id', '=', 'users.user_id').where('user_roles.role_name', '=', role)));
    }
    if (search.emailVerified !== undefined) query = query.where('users.email_verified', '=', search.emailVerified);
    // Timestamps are shown to the millisecond, stored finer on PostgreSQL: "after T" starts at the
    // next millisecond, so a user shown as created at T is never after T.
    if (search.createdAfter) query = query.where('users.created_at', '>=', new Date(search.createdAfter.getTime() + 1));
    if (search.createdBefore) query = query.where('users.created_at', '<', search.createdBefore);
    if (search.beforeId !== undefined) query = query.where('users.user_id', '<', search.beforeId);
    return query;
  };
  const ids = (rows: Array<{ user_id: string }>) => rows.map((r) => String(r.user_id));
  if (search.q === undefined || search.q === '') return ids(await filtered().execute());
  const prefix = `${likeEscape(lookupKey(search.q))}%`;
  // A NUL (which PostgreSQL text cannot hold) matches nothing, as in lookupKey.
  const inName = `%${likeEscape(search.q.toLowerCase().replace(/\u0000/g, '\uFFFD'))}%`;
  if ([...search.q].length < TRIGRAM) {
    return ids(await filtered().where((eb) => eb.or([eb('users.username_key', 'like', prefix), eb('users.email_key', 'like', prefix), eb(eb.fn('lower', ['users.name']), 'like', inName)])).execute());
  }
  // Each branch a derived table, so its ORDER BY and LIMIT stand (a bare UNION would not take them).
  const byUsername = db.selectFrom(filtered().where('users.username_key', 'like', prefix).as('u')).select('u.user_id');
  const byEmail = db.selectFrom(filtered().where('users.email_key', 'like', prefix).as('e')).select('e.user_id');
  const byName = db.selectFrom(filtered().where((eb) => eb(eb.fn('lower', ['users.name']), 'like', inName)).as('n')).select('n.user_id');
  const merged = await db
    .selectFrom(byUsername.union(byEmail).union(byName).as('m'))
    .select('m.user_id')
    .orderBy('m.user_id', 'desc')
    .limit(page)
    .execute();
  return ids(merged);
}

export interface EventSearch {
  userId?: string;
  actorId?: string;
  type?: string;
  before?: string;
  limit: number;
}

/** The audit log, newest first, with the filters of GET /v1/admin/events. */
export async function searchEvents(db: Queryable, search: EventSearch) {
  let query = db
    .selectFrom('audit_events')
    .select(['event_id', 'event', 'occurred_at', 'user_id', 'actor_id', 'session_id', 'ip', 'user_agent', 'details'])
    .orderBy('event_id', 'desc')
    .limit(search.limit + 1);
  if (search.userId !== undefined) query = query.where('user_id', '=', search.userId);
  if (search.actorId !== undefined) query = query.where('actor_id', '=', search.actorId);
  if (search.type !== undefined) query = query.where('event', '=', search.type);
  if (search.before !== undefined) query = query.where('event_id', '<', search.before);
  const rows = await query.execute();
  const page = rows.slice(0, search.limit);
  return {
    events: page.map((row) => ({
      id: row.event_id,
      type: row.event,
      occurred_at: row.occurred_at.toISOString(),
      user_id: row.user_id === null ? null : String(row.user_id),
      actor_id: row.actor_id === null ? null : String(row.actor_id),
      session_id: row.session_id === null ? null : String(row.session_id),
      ip: row.ip,
      user_agent: row.user_agent,
      details: row.details ? (JSON.parse(row.details) as Record<string, unknown>) : null,
    })),
    next: rows.length > search.limit ? page.at(-1)!.event_id : null,
  };
}

/** Sets or clears disabled_at and its reason; answers whether the row changed state. */
export async function setDisabledState(trx: Queryable, userId: string, disabled: boolean, reason: string | null): Promise<boolean> {
  const result = await trx
    .updateTable('users')
    .set(disabled ? { disabled_at: dbNow(trx), disabled_reason: reason } : { disabled_at: null, disabled_reason: null })
    .where('user_id', '=', userId)
    .where('disabled_at', disabled ? 'is' : 'is not', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
