import type { Kysely, Transaction } from 'kysely';
import type { EventRecorder } from '../core/events.js';
import type { AuditLog } from '../audit/audit-log.js';
import { uniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { AppError, validationFailed } from '../errors.js';
import type { ClientInfo } from '../core/caller.js';
import { forbidden, type AccessControl } from './access.js';
import { ADMIN_ROLE, BUILTIN_ROLES, isBuiltinRole, permissionsOfRoles, type Permission } from './permissions.js';
import {
  deleteRole,
  existingRoleNames,
  insertRole,
  listRoles,
  lockAdmins,
  lockRoleHolders,
  lockUserRoles,
  replaceUserRoles,
  rolesAndStoredPermissions,
  storedPermissions,
  updateRole,
} from './repository.js';

/**
 * Who acts: a signed-in user (their id and session), or the operator at the command line
 * (`userId: null`), who holds every permission and needs no recent sign-in.
 */
export interface Actor extends ClientInfo {
  userId: string | null;
  sessionId?: string | null;
}

export interface Role {
  name: string;
  description: string;
  permissions: string[];
  builtin: boolean;
  holders: number;
}

/** The audit context of an administrator's doing to `userId` (null: a role, no user). */
export function actedBy(actor: Actor, userId: string | null) {
  return { userId, actorId: actor.userId, sessionId: actor.sessionId ?? null, ip: actor.ip, userAgent: actor.userAgent };
}

/** The recent sign-in check (core/reauth.ts). */
export interface RecentSignIn {
  recentSignIn(caller: { userId: string; sessionId: string }): Promise<void>;
}

/**
 * Sudo mode (API-ADMIN.md): giving or taking admin needs the actor's session opened in the last
 * 15 minutes (the other destructive actions ask it of their route's guard). The command line's
 * operator is at the server.
 */
export async function assertSudo(reauth: RecentSignIn | undefined, actor: Actor): Promise<void> {
  if (actor.userId !== null && actor.sessionId) {
    if (!reauth) throw new Error('a signed-in actor needs the recent sign-in check');
    await reauth.recentSignIn({ userId: actor.userId, sessionId: actor.sessionId });
  }
}

/**
 * The last-admin rule (API-ADMIN.md): after `change`, some enabled user still holds admin.
 * Takes the admin role's lock first (see lockAdmins), so two administrators demoting each other
 * at once are decided one after the other: the second one sees the first one's change.
 */
export async function assertAdminsLeft(trx: Transaction<Database>, losing: string): Promise<void> {
  const admins = await lockAdmins(trx);
  if (admins.includes(losing) && admins.length === 1) throw new AppError('last_admin');
}

/** Nobody grants what they do not hold: throws 403 forbidden naming the first permission missing. */
function assertHolds(held: ReadonlySet<string> | 'all', needed: Iterable<string>, what: string): void {
  if (held === 'all') return;
  for (const p of needed) if (!held.has(p)) throw forbidden(p, what);
}

export class RolesService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly access: AccessControl,
    private readonly audit: AuditLog,
    /** Absent for the command line, whose operator needs no recent sign-in. */
    private readonly reauth?: RecentSignIn,
    /** user.roles_changed is recorded in the change's transaction. */
    private readonly events?: EventRecorder,
  ) {}

  /** What the actor holds, read now (in `trx` when given: inside a locked change, it is current). */
  async #held(actor: Actor, trx?: Transaction<Database>): Promise<ReadonlySet<string> | 'all'> {
    if (actor.userId === null) return 'all';
    if (!trx) return this.access.permissionsOf(actor.userId);
    const { roles, stored } = await rolesAndStoredPermissions(trx ?? this.db, actor.userId);
    return permissionsOfRoles(roles, stored);
  }

  async list(): Promise<Role[]> {
    return (await listRoles(this.db)).map((r) => withBuiltinPermissions(r));
  }

  async get(name: string): Promise<Role> {
    const [role] = await listRoles(this.db, [name]);
    if (!role) throw new AppError('not_found', { detail: 'There is no role of that name.' });
    return withBuiltinPermissions(role);
  }

  async create(actor: Actor, input: { name: string; description?: string; permissions: readonly Permission[] }): Promise<Role> {
    const permissions = [...new Set(input.permissions)].sort();
    assertHolds(await this.#held(actor), permissions, 'Making this role needs');
    if (isBuiltinRole(input.name)) throw new AppError('role_exists');
    try {
      await this.db.transaction().execute((trx) => insertRole(trx, { name: input.name, description: input.description ?? '', permissions }));
    } catch (err) {
      if (uniqueViolation(err) !== undefined) throw new AppError('role_exists');
      throw err;
    }
    await this.audit.record('role_created', actedBy(actor, null), { role: input.name, permissions: permissions.join(' ') });
    return this.get(input.name);
  }

  async update(actor: Actor, name: string, changes: { description?: string; permissions?: readonly Permission[] }): Promise<Role> {
    if (isBuiltinRole(name)) throw new AppError('role_builtin');
    const permissions = changes.permissions && [...new Set(changes.permissions)].sort();
    const holders = await this.db.transaction().execute(async (trx) => {
      const role = await lockRoleHolders(trx, name);
      if (!role.exists) throw new AppError('not_found', { detail: 'There is no role of that name.' });
      // Changing a role hands its new permissions to every holder, and takes the old ones away.
      const before = (await storedPermissions(trx, [name])).get(name) ?? [];
      assertHolds(await this.#held(actor, trx), [...before, ...(permissions ?? [])], 'Changing this role needs');
      await updateRole(trx, name, { description: changes.description, permissions });
      await this.access.publish(trx, role.holders);
      return role.holders;
    });
    this.access.forget(holders);
    await this.audit.record('role_changed', actedBy(actor, null), { role: name, ...(permissions ? { permissions: permissions.join(' ') } : {}) });
    return this.get(name);
  }

  async delete(actor: Actor, name: string): Promise<void> {
    if (isBuiltinRole(name)) throw new AppError('role_builtin');
    const holders = await this.db.transaction().execute(async (trx) => {
      const role = await lockRoleHolders(trx, name);
      if (!role.exists) throw new AppError('not_found', { detail: 'There is no role of that name.' });
      assertHolds(await this.#held(actor, trx), (await storedPermissions(trx, [name])).get(name) ?? [], 'Deleting this role needs');
      await deleteRole(trx, name);
      await this.access.publish(trx, role.holders);
      return role.holders;
    });
    this.access.forget(holders);
    await this.audit.record('role_deleted', actedBy(actor, null), { role: name, holders: holders.length });
  }

  /**
   * PUT /v1/admin/users/{id}/roles: the user's roles become `roles`. The actor must hold every
   * permission of each role given or taken (taking is held to the same rule, so a holder of
   * roles:write alone cannot strip an administrator); giving or taking admin needs a recent
   * sign-in; the last admin keeps the role. Answers the user's roles.
   */
  async setUserRoles(actor: Actor, userId: string, wanted: readonly string[]): Promise<string[]> {
    const roles = [...new Set(wanted)].sort();
    const known = await existingRoleNames(this.db, roles);
    const unknown = roles.filter((r) => !known.has(r));
    if (unknown.length) throw validationFailed(unknown.map((r) => ({ field: 'roles', message: `there is no role named ${r}` })));

    const current = await this.#rolesOf(userId);
    const changed = [...roles.filter((r) => !current.includes(r)), ...current.filter((r) => !roles.includes(r))];
    assertHolds(await this.#held(actor), await this.#permissionsOf(changed), 'Giving or taking these roles needs');
    if (changed.includes(ADMIN_ROLE)) await assertSudo(this.reauth, actor);
    if (changed.length === 0) return current;

    const result = await this.db.transaction().execute(async (trx) => {
      // The admin role's lock first, always: role changes run one at a time, each seeing the last.
      const admins = await lockAdmins(trx);
      const before = await lockUserRoles(trx, userId);
      if (!before) throw notFound();
      const given = roles.filter((r) => !before.includes(r));
      const taken = before.filter((r) => !roles.includes(r));
      if (given.length + taken.length === 0) return { before, given, taken };
      // Checked again under the lock: what the actor holds may have changed since (a demotion).
      assertHolds(await this.#held(actor, trx), await this.#permissionsOf([...given, ...taken], trx), 'Giving or taking these roles needs');
      if (given.length && (await existingRoleNames(trx, given)).size !== given.length) throw validationFailed([{ field: 'roles', message: 'a role was deleted meanwhile' }]);
      if (taken.includes(ADMIN_ROLE) && admins.includes(userId) && admins.length === 1) throw new AppError('last_admin');
      await replaceUserRoles(trx, userId, before, roles, actor.userId);
      await this.events?.record(trx, { type: 'user.roles_changed', userId, data: { roles, given, taken } });
      await this.access.publish(trx, [userId]);
      return { before, given, taken };
    });
    if (result.given.length + result.taken.length === 0) return result.before;
    this.access.forget([userId]);
    await this.audit.record('roles_changed', actedBy(actor, userId), { given: result.given.join(' '), taken: result.taken.join(' ') });
    return roles;
  }

  async #rolesOf(userId: string): Promise<string[]> {
    const row = await this.db.selectFrom('users').select('user_id').where('user_id', '=', userId).executeTakeFirst();
    if (!row) throw notFound();
    return (await rolesAndStoredPermissions(this.db, userId)).roles;
  }

  async #permissionsOf(roles: readonly string[], trx?: Transaction<Database>): Promise<Set<Permission>> {
    return permissionsOfRoles(roles, await storedPermissions(trx ?? this.db, roles.filter((r) => !isBuiltinRole(r))));
  }

  /**
   * Checks that the actor may give these roles to a user being made (POST /v1/admin/users):
   * roles:write, every permission of the roles, a recent sign-in for admin; unknown roles are 400.
   */
  async assertMayGive(actor: Actor, roles: readonly string[]): Promise<void> {
    if (roles.length === 0) return;
    const known = await existingRoleNames(this.db, roles);
    const unknown = roles.filter((r) => !known.has(r));
    if (unknown.length) throw validationFailed(unknown.map((r) => ({ field: 'roles', message: `there is no role named ${r}` })));
    const held = await this.#held(actor);
    assertHolds(held, ['roles:write'], 'Giving roles needs');
    assertHolds(held, await this.#permissionsOf(roles), 'Giving these roles needs');
    if (roles.includes(ADMIN_ROLE)) await assertSudo(this.reauth, actor);
  }
}

function notFound(): AppError {
  return new AppError('not_found', { detail: 'There is no user with that id.' });
}

function withBuiltinPermissions(role: Role): Role {
  const builtin = BUILTIN_ROLES[role.name];
  return builtin ? { ...role, builtin: true, permissions: [...builtin.permissions] } : role;
}
