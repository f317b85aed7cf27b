/**
 * Where the guard learns what a user may do (requireCaller({ permission })). Roles (the admin
 * API) plug their own source in through buildApp's options; until then nobody has any.
 */
export interface PermissionSource {
  permissionsOf(userId: string): Promise<ReadonlySet<string>>;
}

const NONE: ReadonlySet<string> = new Set();

export const noPermissions: PermissionSource = Object.freeze({ permissionsOf: async () => NONE });
