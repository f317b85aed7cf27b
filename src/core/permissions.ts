/**
 * Where the guard learns what a user may do (requireCaller({ permission })). Roles (the admin
 * API) plug their own source in through buildApp's options; until then nobody has any.
 */
export interface PermissionSource {
  permissionsOf(userId: string): Promise<ReadonlySet<string>>;
}

const NONE: ReadonlySet<string> = new Set();

export const noPermissions: PermissionSource = Object.freeze({ permissionsOf: async () => NONE });

/** A user's membership of one organization, as the guard sees it (API-ORGS.md). */
export interface OrgMembership {
  role: string;
  permissions: ReadonlySet<string>;
}

/**
 * Where the guard learns a user's membership of an organization
 * (requireCaller({ organization })), and checks a token's `org_id`/`org_role` on every request.
 * The organizations feature plugs its source in (src/orgs/access.ts); by default nobody is a member.
 */
export interface OrgMembershipSource {
  membershipOf(userId: string, orgId: string): Promise<OrgMembership | undefined>;
}

export const noMemberships: OrgMembershipSource = Object.freeze({ membershipOf: async () => undefined });
