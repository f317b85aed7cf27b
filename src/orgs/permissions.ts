/**
 * Organization permissions and the built-in organization roles (API-ORGS.md). They are apart
 * from the service-wide roles of src/admin/: a role here holds only for one organization.
 */

export const ORG_PERMISSIONS = ['org:read', 'org:members', 'org:settings', 'org:delete'] as const;
export type OrgPermission = (typeof ORG_PERMISSIONS)[number];

const KNOWN = new Set<string>(ORG_PERMISSIONS);
export function isOrgPermission(value: string): value is OrgPermission {
  return KNOWN.has(value);
}

export const OWNER = 'owner';

export const BUILTIN_ORG_ROLES: Readonly<Record<string, readonly OrgPermission[]>> = Object.freeze({
  [OWNER]: ORG_PERMISSIONS,
  admin: ['org:read', 'org:members', 'org:settings'],
  member: ['org:read'],
});

export function isBuiltinOrgRole(name: string): boolean {
  return Object.hasOwn(BUILTIN_ORG_ROLES, name);
}

/** A custom role's name: as the service-wide roles' names. */
export const ORG_ROLE_NAME = '^[a-z][a-z0-9_-]{1,31}$';

/** The permissions of `role` in an organization whose custom roles are `custom`; an unknown role gives none. */
export function permissionsOfOrgRole(role: string, custom: ReadonlyMap<string, readonly string[]>): ReadonlySet<OrgPermission> {
  const listed = BUILTIN_ORG_ROLES[role] ?? custom.get(role) ?? [];
  return new Set(listed.filter(isOrgPermission));
}

/** `role`'s permissions are a strict subset of `held`: the role is below the holder's own. */
export function isBelow(role: ReadonlySet<string>, held: ReadonlySet<string>): boolean {
  if (role.size >= held.size) return false;
  for (const p of role) if (!held.has(p)) return false;
  return true;
}
