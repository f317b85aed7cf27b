import { auth, call } from './api.js';

/**
 * What the signed-in user may do in the admin console: their permissions, as the service decides
 * them now (GET /v1/users/me/permissions). The console offers only these; the service checks
 * every request again whatever the page shows.
 */
let held: { userId: string; permissions: Set<string> } | undefined;

export async function loadPermissions(): Promise<Set<string>> {
  const userId = auth.user?.id;
  if (!userId) return new Set();
  if (held?.userId === userId) return held.permissions;
  const { permissions } = await call<{ roles: string[]; permissions: string[] }>('GET', '/v1/users/me/permissions');
  held = { userId, permissions: new Set(permissions) };
  return held.permissions;
}

/** The permissions loaded for the signed-in user (empty until loaded, or when signed out). */
export function can(permission: string): boolean {
  return auth.signedIn && held !== undefined && held.userId === auth.user?.id && held.permissions.has(permission);
}

/** Forget them (a role may have changed: read them again on the next page). */
export function reloadPermissions(): void {
  held = undefined;
}
