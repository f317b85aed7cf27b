import type { Kysely, Transaction } from 'kysely';
import { auditRow, type AuditDetails, type AuditEventType } from '../audit/audit-log.js';
import type { Caller } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import { lookupKey } from '../core/lookup-key.js';
import { hashSecret, newSecret } from '../core/secrets.js';
import { uniqueViolation } from '../db/errors.js';
import { withNamedLock } from '../db/locks.js';
import type { Database } from '../db/schema.js';
import { AppError, forbidden, validationFailed } from '../errors.js';
import type { MailLog, Mailer } from '../mail/mailer.js';
import { orgInvitationMessage } from '../mail/templates.js';
import type { OrgAccess } from './access.js';
import { BUILTIN_ORG_ROLES, isBelow, isBuiltinOrgRole, OWNER, permissionsOfOrgRole, type OrgPermission } from './permissions.js';
import {
  consumeInvitation,
  countOrgsCreatedBy,
  customRoles,
  deleteCustomRole,
  deleteInvitation,
  deleteMember,
  deleteOrg,
  findInvitationByHash,
  findMember,
  findOrg,
  insertCustomRole,
  insertInvitation,
  insertMember,
  insertOrg,
  listMembers,
  listOrgsOf,
  listPendingInvitations,
  lockOrg,
  memberIds,
  ownersOf,
  roleInUse,
  setMemberRole,
  setSessionOrg,
  updateOrg,
  type InvitationRow,
  type MemberRow,
  type OrgRow,
} from './repository.js';
import type { Invitation, Membership, Org } from './schemas.js';

/** API-ORGS.md: an invitation's link works for 7 days. */
export const INVITATION_TTL_DAYS = 7;
const DAY_MS = 86_400_000;

export interface OrgsDeps {
  db: Kysely<Database>;
  clock: Clock;
  orgAccess: OrgAccess;
  mailer: Mailer;
  log: MailLog;
  config: { publicUrl: string; orgLimitPerUser: number };
  /** The caller's account as the invitation rules read it. */
  users: { find(userId: string): Promise<{ email: string; email_verified: boolean; name: string } | undefined> };
}

function notFound(): AppError {
  return new AppError('not_found', { detail: 'There is no organization with that id.' });
}

export function toOrg(row: OrgRow): Org {
  return { id: row.org_id, name: row.name, slug: row.slug, created_at: row.created_at.toISOString(), members: row.members };
}

function toMembership(row: MemberRow): Membership {
  return { user: { id: row.user_id, username: row.username, name: row.name, email: row.email }, role: row.role, joined_at: row.joined_at.toISOString() };
}

function toInvitation(row: InvitationRow): Invitation {
  return { id: row.invitation_id, email: row.email, role: row.role, expires_at: row.expires_at.toISOString() };
}

/**
 * The rules of organizations (API-ORGS.md). Each change runs in one transaction that also writes
 * its audit event (with the organization's id) and announces the memberships it changed, so a
 * change and its record commit together or not at all (a webhook event can join them there).
 * Membership changes take the organization's row lock first (lockOrg): the last-owner rule holds
 * under concurrent demotions on every database.
 */
export class OrgsService {
  private readonly db: Kysely<Database>;
  private readonly clock: Clock;
  private readonly access: OrgAccess;

  constructor(private readonly deps: OrgsDeps) {
    ({ db: this.db, clock: this.clock, orgAccess: this.access } = deps);
  }

  /** Writes the event of an organization change inside its transaction. */
  async #audit(trx: Transaction<Database>, event: AuditEventType, caller: Caller, orgId: string, subject: string | null, details: AuditDetails = {}): Promise<void> {
    const row = auditRow(event, { userId: subject ?? caller.userId, actorId: subject !== null && subject !== caller.userId ? caller.userId : null, sessionId: caller.sessionId, ip: caller.ip, userAgent: caller.userAgent }, { org_id: orgId, ...details });
    await trx.insertInto('audit_events').values(row).execute();
  }

  /** Runs a change; the memberships it names are forgotten here once it has committed. */
  async #change<T>(work: (trx: Transaction<Database>, changed: string[]) => Promise<T>, lockName?: string): Promise<T> {
    const changed: string[] = [];
    const run = (fn: (trx: Transaction<Database>) => Promise<T>) => (lockName === undefined ? this.db.transaction().execute(fn) : withNamedLock(this.db, lockName, fn));
    const result = await run(async (trx) => {
      const value = await work(trx, changed);
      await this.access.publish(trx, changed);
      return value;
    });
    this.access.forget(changed);
    return result;
  }

  async create(caller: Caller, input: { name: string; slug: string }): Promise<Org> {
    const orgId = await this.#change(async (trx, changed) => {
      // Counted under a lock of the user's own: concurrent requests cannot pass the limit together.
      if ((await countOrgsCreatedBy(trx, caller.userId)) >= this.deps.config.orgLimitPerUser) throw new AppError('org_limit_reached');
      let id: string;
      try {
        id = await insertOrg(trx, { name: input.name, slug: input.slug, createdBy: caller.userId });
      } catch (err) {
        if (uniqueViolation(err) !== undefined) throw new AppError('slug_taken');
        throw err;
      }
      await insertMember(trx, id, caller.userId, OWNER);
      await this.#audit(trx, 'org_created', caller, id, null, { slug: input.slug });
      changed.push(caller.userId);
      return id;
    }, `orgs_created_by:${caller.userId}`);
    return this.get(orgId);
  }

  async listMine(userId: string): Promise<Array<Org & { role: string }>> {
    return (await listOrgsOf(this.db, userId)).map((row) => ({ ...toOrg(row), role: row.role }));
  }

  async get(orgId: string): Promise<Org> {
    const row = await findOrg(this.db, orgId);
    if (!row) throw notFound();
    return toOrg(row);
  }

  async update(caller: Caller, orgId: string, changes: { name?: string | undefined; slug?: string | undefined }): Promise<Org> {
    await this.#change(async (trx) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      try {
        await updateOrg(trx, orgId, changes);
      } catch (err) {
        if (uniqueViolation(err) !== undefined) throw new AppError('slug_taken');
        throw err;
      }
      await this.#audit(trx, 'org_updated', caller, orgId, null, { ...(changes.name !== undefined ? { name: changes.name } : {}), ...(changes.slug !== undefined ? { slug: changes.slug } : {}) });
    });
    return this.get(orgId);
  }

  /** The organization, its memberships and invitations go; every former member's tokens for it stop. */
  async delete(caller: Caller, orgId: string): Promise<void> {
    await this.#change(async (trx, changed) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      changed.push(...(await memberIds(trx, orgId)));
      await deleteOrg(trx, orgId);
      await this.#audit(trx, 'org_deleted', caller, orgId, null, { members: changed.length });
    });
  }

  async members(orgId: string, limit: number, before?: string): Promise<{ members: Membership[]; next: string | null }> {
    const page = await listMembers(this.db, orgId, limit, before);
    return { members: page.members.map(toMembership), next: page.next };
  }

  /** The permissions of `role` in the organization; an unknown role is 400 naming the field. */
  async #roleExists(trx: Transaction<Database>, orgId: string, role: string): Promise<ReadonlySet<OrgPermission>> {
    const custom = (await customRoles(trx, [orgId])).get(orgId) ?? new Map<string, string[]>();
    if (!isBuiltinOrgRole(role) && !custom.has(role)) throw validationFailed([{ field: 'role', message: `there is no role named ${role} in this organization` }]);
    return permissionsOfOrgRole(role, custom);
  }

  /**
   * Owners may do anything to anyone; anyone else needs org:members, and both the member's role
   * and the role given must be below the actor's own (read in the locked transaction: current).
   */
  async #assertMayManage(trx: Transaction<Database>, caller: Caller, orgId: string, roles: readonly string[]): Promise<void> {
    const actor = await findMember(trx, orgId, caller.userId);
    if (!actor) throw notFound();
    if (actor.role === OWNER) return;
    const custom = (await customRoles(trx, [orgId])).get(orgId) ?? new Map<string, string[]>();
    const held = permissionsOfOrgRole(actor.role, custom);
    if (!held.has('org:members')) throw forbidden('org:members');
    for (const role of roles) {
      if (!isBelow(permissionsOfOrgRole(role, custom), held)) {
        throw new AppError('forbidden', { detail: `Your role (${actor.role}) may only manage roles below its own; ${role} is not.`, extensions: { permission: 'org:members' } });
      }
    }
  }

  async changeRole(caller: Caller, orgId: string, userId: string, role: string): Promise<Membership> {
    const member = await this.#change(async (trx, changed) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      const target = await findMember(trx, orgId, userId);
      if (!target) throw new AppError('not_found', { detail: 'That user is not a member of the organization.' });
      // API-ORGS.md: the last-owner rule is judged before anything else.
      if (target.role === OWNER && role !== OWNER && (await ownersOf(trx, orgId)).length === 1) throw new AppError('last_owner');
      await this.#roleExists(trx, orgId, role);
      await this.#assertMayManage(trx, caller, orgId, [target.role, role]);
      if (target.role === role) return target;
      await setMemberRole(trx, orgId, userId, role);
      await this.#audit(trx, 'org_member_role_changed', caller, orgId, userId, { from: target.role, to: role });
      changed.push(userId);
      return { ...target, role };
    });
    return toMembership(member);
  }

  /** Removes a member, or the caller leaves (needing no permission for that). */
  async removeMember(caller: Caller, orgId: string, userId: string): Promise<void> {
    await this.#change(async (trx, changed) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      const target = await findMember(trx, orgId, userId);
      if (!target) throw new AppError('not_found', { detail: 'That user is not a member of the organization.' });
      if (target.role === OWNER && (await ownersOf(trx, orgId)).length === 1) throw new AppError('last_owner');
      const leaving = userId === caller.userId;
      if (!leaving) await this.#assertMayManage(trx, caller, orgId, [target.role]);
      await deleteMember(trx, orgId, userId);
      await this.#audit(trx, 'org_member_removed', caller, orgId, userId, { role: target.role, left: leaving });
      changed.push(userId);
    });
  }

  /** POST /v1/orgs/{id}/invitations: a single-use link by mail; a newer invitation to the address supersedes this one. */
  async invite(caller: Caller, orgId: string, input: { email: string; role: string }): Promise<Invitation> {
    const token = newSecret();
    const { invitation, orgName } = await this.#change(async (trx) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      await this.#roleExists(trx, orgId, input.role);
      await this.#assertMayManage(trx, caller, orgId, [input.role]);
      const emailKey = lookupKey(input.email);
      const member = await trx
        .selectFrom('org_members')
        .innerJoin('users', 'users.user_id', 'org_members.user_id')
        .select('users.user_id')
        .where('org_members.org_id', '=', orgId)
        .where('users.email_key', '=', emailKey)
        .executeTakeFirst();
      if (member) throw new AppError('already_member');
      const row = await insertInvitation(trx, {
        orgId,
        email: input.email,
        emailKey,
        role: input.role,
        tokenHash: hashSecret(token),
        invitedBy: caller.userId,
        expiresAt: new Date(this.clock.now() + INVITATION_TTL_DAYS * DAY_MS),
      });
      await this.#audit(trx, 'org_invitation_created', caller, orgId, null, { invitation_id: row.invitation_id, role: input.role });
      const org = await findOrg(trx, orgId);
      return { invitation: row, orgName: org!.name };
    });
    const inviter = (await this.deps.users.find(caller.userId))?.name ?? 'Someone';
    // The token travels in the fragment, so it never reaches a server's access log (as API-ACCOUNT.md's links).
    const link = `${this.deps.config.publicUrl}/accept-invitation#token=${token}`;
    this.deps.mailer.send(orgInvitationMessage(input.email, orgName, inviter, input.role, link, INVITATION_TTL_DAYS));
    return toInvitation(invitation);
  }

  async invitations(orgId: string): Promise<Invitation[]> {
    return (await listPendingInvitations(this.db, orgId, new Date(this.clock.now()))).map(toInvitation);
  }

  async revokeInvitation(caller: Caller, orgId: string, invitationId: string): Promise<void> {
    await this.#change(async (trx) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      const gone = /^[1-9][0-9]{0,17}$/.test(invitationId) ? await deleteInvitation(trx, orgId, invitationId) : undefined;
      if (!gone) throw new AppError('not_found', { detail: 'There is no pending invitation with that id.' });
      await this.#audit(trx, 'org_invitation_revoked', caller, orgId, null, { invitation_id: invitationId });
    });
  }

  /**
   * POST /v1/invitations/accept: the invited person, signed in, whose verified email is the one
   * invited, joins with the invited role; the invitation is used up.
   */
  async accept(caller: Caller, token: string): Promise<Membership> {
    const invalid = () => new AppError('invalid_invitation');
    const invitation = await findInvitationByHash(this.db, hashSecret(token));
    if (!invitation || invitation.expires_at.getTime() <= this.clock.now()) throw invalid();
    const user = await this.deps.users.find(caller.userId);
    if (!user) throw new AppError('invalid_token');
    if (lookupKey(user.email) !== invitation.email_key) throw invalid();
    if (!user.email_verified) throw new AppError('email_not_verified');
    const orgId = invitation.org_id;
    const member = await this.#change(async (trx, changed) => {
      if (!(await lockOrg(trx, orgId))) throw invalid();
      if (await findMember(trx, orgId, caller.userId)) throw new AppError('already_member');
      if (!(await consumeInvitation(trx, invitation.invitation_id))) throw invalid();
      await insertMember(trx, orgId, caller.userId, invitation.role);
      await this.#audit(trx, 'org_member_added', caller, orgId, null, { role: invitation.role, invitation_id: invitation.invitation_id });
      changed.push(caller.userId);
      return (await findMember(trx, orgId, caller.userId))!;
    });
    return toMembership(member);
  }

  /** POST /v1/sessions/organization: the session speaks for the organization (a member's) or none. */
  async switchTo(caller: Caller, orgId: string | null): Promise<void> {
    if (orgId !== null && !(await this.access.membershipOf(caller.userId, orgId))) throw notFound();
    await this.db.transaction().execute(async (trx) => {
      // Read again under the lock: a removal racing the switch leaves no choice behind.
      if (orgId !== null && (!(await lockOrg(trx, orgId)) || !(await findMember(trx, orgId, caller.userId)))) throw notFound();
      await setSessionOrg(trx, caller.sessionId, orgId);
      await trx.insertInto('audit_events').values(auditRow('org_switched', { userId: caller.userId, sessionId: caller.sessionId, ip: caller.ip, userAgent: caller.userAgent }, orgId === null ? { org_id: 'none' } : { org_id: orgId })).execute();
    });
  }

  async roles(orgId: string): Promise<Array<{ name: string; permissions: string[]; builtin: boolean }>> {
    const custom = (await customRoles(this.db, [orgId])).get(orgId) ?? new Map<string, string[]>();
    return [
      ...Object.entries(BUILTIN_ORG_ROLES).map(([name, permissions]) => ({ name, permissions: [...permissions], builtin: true })),
      ...[...custom].sort(([a], [b]) => a.localeCompare(b)).map(([name, permissions]) => ({ name, permissions, builtin: false })),
    ];
  }

  /** A custom role: no broader than the maker's own permissions (owners excepted). */
  async createRole(caller: Caller, orgId: string, name: string, permissions: readonly OrgPermission[]): Promise<void> {
    if (isBuiltinOrgRole(name)) throw new AppError('role_exists');
    const listed = [...new Set(permissions)].sort();
    await this.#change(async (trx) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      const actor = await findMember(trx, orgId, caller.userId);
      if (!actor) throw notFound();
      if (actor.role !== OWNER) {
        const held = permissionsOfOrgRole(actor.role, (await customRoles(trx, [orgId])).get(orgId) ?? new Map());
        for (const p of listed) if (!held.has(p)) throw forbidden(p);
      }
      if ((await customRoles(trx, [orgId])).get(orgId)?.has(name)) throw new AppError('role_exists');
      await insertCustomRole(trx, orgId, name, listed);
      await this.#audit(trx, 'org_updated', caller, orgId, null, { role_created: name, permissions: listed.join(' ') });
    });
  }

  /** Deletes a custom role nobody holds or is invited to (one in use is 400, naming the field). */
  async deleteRole(caller: Caller, orgId: string, name: string): Promise<void> {
    if (isBuiltinOrgRole(name)) throw new AppError('role_builtin');
    await this.#change(async (trx) => {
      if (!(await lockOrg(trx, orgId))) throw notFound();
      if (await roleInUse(trx, orgId, name)) throw validationFailed([{ field: 'name', message: 'members or invitations hold this role: give them another first' }]);
      if (!(await deleteCustomRole(trx, orgId, name))) throw new AppError('not_found', { detail: 'There is no custom role of that name.' });
      await this.#audit(trx, 'org_updated', caller, orgId, null, { role_deleted: name });
    });
  }
}
