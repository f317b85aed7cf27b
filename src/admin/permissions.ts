/**
 * The permissions catalogue and the built-in roles (API-ADMIN.md, Roles and permissions). A
 * permission is `resource:action`; a role holds a set of them. The built-in roles live here, in
 * code, so `admin` holds every permission added to PERMISSIONS later without a migration.
 */

export const PERMISSIONS = [
  'users:read',
  'users:write',
  'users:credentials',
  'users:delete',
  'sessions:revoke',
  'roles:read',
  'roles:write',
  'audit:read',
  'clients:read',
  'clients:write',
  'webhooks:read',
  'webhooks:write',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

const KNOWN = new Set<string>(PERMISSIONS);

export function isPermission(value: string): value is Permission {
  return KNOWN.has(value);
}

export const ADMIN_ROLE = 'admin';

export const BUILTIN_ROLES: Readonly<Record<string, { description: string; permissions: readonly Permission[] }>> = Object.freeze({
  [ADMIN_ROLE]: { description: 'Every permission, including ones added later.', permissions: PERMISSIONS },
  support: { description: 'Find users, see their sessions, factors and events, end sessions, read the audit log.', permissions: ['users:read', 'sessions:revoke', 'audit:read'] },
});

export function isBuiltinRole(name: string): boolean {
  return Object.hasOwn(BUILTIN_ROLES, name);
}

/** A role's name: lower-case ASCII, 2 to 32 characters. */
export const ROLE_NAME = '^[a-z][a-z0-9_-]{1,31}$';
export const ROLE_NAME_RE = new RegExp(ROLE_NAME);

/** Permissions of the roles named, built-in ones from code, the others from `stored`. */
export function permissionsOfRoles(roles: Iterable<string>, stored: ReadonlyMap<string, readonly string[]>): Set<Permission> {
  const held = new Set<Permission>();
  for (const role of roles) {
    for (const p of BUILTIN_ROLES[role]?.permissions ?? stored.get(role) ?? []) if (isPermission(p)) held.add(p);
  }
  return held;
}
