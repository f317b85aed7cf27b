import type { Kysely, Transaction } from 'kysely';
import type { InvalidatedCache } from '../cache/invalidated-cache.js';
import type { Invalidation } from '../cache/invalidation.js';
import type { OrgMembership, OrgMembershipSource } from '../core/permissions.js';
import type { Database } from '../db/schema.js';
import { isBuiltinOrgRole, permissionsOfOrgRole } from './permissions.js';
import { customRoles, membershipsOf } from './repository.js';

type Queryable = Kysely<Database> | Transaction<Database>;

/** A user's memberships: organization id → role and permissions. */
export type Memberships = ReadonlyMap<string, OrgMembership>;

/**
 * What a user may do in each organization, from the memberships held now, never from the token.
 * Cached per user in this instance and kept right like sessions and roles (see
 * cache/invalidated-cache.ts): a change publishes the `membership` kind for the users concerned,
 * in the transaction that makes it, and every instance forgets them within a second.
 */
export class OrgAccess implements OrgMembershipSource {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly cache: InvalidatedCache<Memberships>,
    private readonly invalidation: Invalidation,
  ) {}

  async membershipsOf(userId: string): Promise<Memberships> {
    const cached = this.cache.get(userId);
    if (cached) return cached;
    const epoch = this.cache.epoch;
    const roles = await membershipsOf(this.db, userId);
    const custom = await customRoles(this.db, [...roles].filter(([, role]) => !isBuiltinOrgRole(role)).map(([orgId]) => orgId));
    const memberships = new Map<string, OrgMembership>();
    for (const [orgId, role] of roles) memberships.set(orgId, { role, permissions: permissionsOfOrgRole(role, custom.get(orgId) ?? new Map()) });
    this.cache.set(userId, memberships, epoch);
    return memberships;
  }

  async membershipOf(userId: string, orgId: string): Promise<OrgMembership | undefined> {
    return (await this.membershipsOf(userId)).get(orgId);
  }

  /** Tells the other instances (on commit, when `db` is a transaction) that these users' memberships changed. */
  publish(db: Queryable, userIds: readonly string[]): Promise<void> {
    return this.invalidation.publish(db, 'membership', userIds);
  }

  /** This instance forgets at once; call once the change is committed. */
  forget(userIds: readonly string[]): void {
    this.invalidation.forget('membership', userIds);
  }
}
