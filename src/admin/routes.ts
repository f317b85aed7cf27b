import type { FastifyRequest } from 'fastify';
import { callerOf } from '../auth/guard.js';
import { AppError, validationFailed, type ProblemName } from '../errors.js';
import { bearerAuth, NoContent, problems } from '../http/schemas.js';
import type { App, Feature, Guard } from '../http/types.js';
import type { RequireCaller } from '../auth/guard.js';
import type { Clock } from '../core/clock.js';
import type { EventRecorder } from '../core/events.js';
import type { Config } from '../config.js';
import { AccountDeletion, type AccountDeletionDeps } from '../account/deletion.js';
import { TAKEN } from '../users/service.js';
import type { AccessControl } from './access.js';
import { PERMISSIONS, type Permission } from './permissions.js';
import { RolesService, type Actor } from './roles.js';
import {
  AdminEventList,
  AdminSessionList,
  AdminUser,
  AdminUserList,
  DisableBody,
  MyPermissions,
  EventsQuery,
  NewRoleBody,
  NewUserBody,
  Role,
  RoleList,
  RoleParams,
  RolesAnswer,
  RolesBody,
  SetPasswordBody,
  UpdateRoleBody,
  UpdateUserBody,
  UserEventsQuery,
  UserIdParams,
  UserPasskeyParams,
  UserSearchQuery,
  UserSessionParams,
} from './schemas.js';
import { AdminUsersService, decodeCursor } from './users.js';
import { findOrg, listAllOrgs } from '../orgs/repository.js';
import { AdminOrgQuery, Org, OrgParams } from '../orgs/schemas.js';
import { toOrg } from '../orgs/service.js';
import { Type } from 'typebox';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * Every endpoint of API-ADMIN.md with the permission it needs: the routes below take theirs
 * from here, and the tests generate the 403 forbidden of each from it.
 */
export const ADMIN_ENDPOINTS = {
  'GET /v1/admin/users': 'users:read',
  'POST /v1/admin/users': 'users:write',
  'GET /v1/admin/users/:id': 'users:read',
  'PATCH /v1/admin/users/:id': 'users:write',
  'POST /v1/admin/users/:id/disable': 'users:write',
  'POST /v1/admin/users/:id/enable': 'users:write',
  'PUT /v1/admin/users/:id/password': 'users:credentials',
  'POST /v1/admin/users/:id/password-reset': 'users:credentials',
  'DELETE /v1/admin/users/:id/mfa': 'users:credentials',
  'DELETE /v1/admin/users/:id/passkeys/:pid': 'users:credentials',
  'GET /v1/admin/users/:id/sessions': 'users:read',
  'DELETE /v1/admin/users/:id/sessions': 'sessions:revoke',
  'DELETE /v1/admin/users/:id/sessions/:sid': 'sessions:revoke',
  'GET /v1/admin/users/:id/events': 'users:read',
  'PUT /v1/admin/users/:id/roles': 'roles:write',
  'DELETE /v1/admin/users/:id': 'users:delete',
  'GET /v1/admin/roles': 'roles:read',
  'POST /v1/admin/roles': 'roles:write',
  'PATCH /v1/admin/roles/:name': 'roles:write',
  'DELETE /v1/admin/roles/:name': 'roles:write',
  'GET /v1/admin/events': 'audit:read',
  'GET /v1/admin/orgs': 'users:read',
  'GET /v1/admin/orgs/:id': 'users:read',
  // Webhooks (API-INTEGRATION.md), routes of src/webhooks/routes.ts.
  'GET /v1/admin/webhooks': 'webhooks:read',
  'POST /v1/admin/webhooks': 'webhooks:write',
  'GET /v1/admin/webhooks/:id': 'webhooks:read',
  'PATCH /v1/admin/webhooks/:id': 'webhooks:write',
  'DELETE /v1/admin/webhooks/:id': 'webhooks:write',
  'POST /v1/admin/webhooks/:id/rotate-secret': 'webhooks:write',
  'GET /v1/admin/webhooks/:id/deliveries': 'webhooks:read',
  'POST /v1/admin/webhooks/:id/deliveries/:did/retry': 'webhooks:write',
} as const satisfies Record<string, Permission>;

type Endpoint = keyof typeof ADMIN_ENDPOINTS;

/**
 * Sudo mode (API-ADMIN.md): these need a session opened in the last 15 minutes. Giving or taking
 * admin needs one too, checked by the roles service (it depends on the roles).
 */
export const RECENT_SIGN_IN: ReadonlySet<Endpoint> = new Set<Endpoint>([
  'DELETE /v1/admin/users/:id',
  'PUT /v1/admin/users/:id/password',
  'DELETE /v1/admin/users/:id/mfa',
  'DELETE /v1/admin/users/:id/passkeys/:pid',
]);

const ID = /^[1-9][0-9]{0,17}$/;

/** A user id that cannot exist is answered like one that does not: 404. */
function userId(params: { id: string }): string {
  const { id } = params;
  if (!ID.test(id)) throw new AppError('not_found', { detail: 'There is no user with that id.' });
  return id;
}

function actorOf(request: FastifyRequest): Actor {
  const caller = callerOf(request);
  return { userId: caller.userId, sessionId: caller.sessionId, ip: caller.ip, userAgent: caller.userAgent };
}

/** The errors every admin endpoint can answer, beside its own. */
const COMMON: ProblemName[] = ['invalid_token', 'forbidden', 'mfa_setup_required', 'too_many_requests'];
const WITH_BODY: ProblemName[] = ['validation_failed', 'payload_too_large', 'unsupported_media_type'];

export function adminRoutes(app: App, deps: { db: Kysely<Database>; users: AdminUsersService; roles: RolesService; access: AccessControl; guard: Guard; requireCaller: RequireCaller }): void {
  const { db, users, roles, access, guard, requireCaller } = deps;
  /** An empty body is `{}` for endpoints whose body is optional. */
  const emptyBodyIsObject = async (request: FastifyRequest) => {
    if (request.body === undefined) request.body = {};
  };
  /** The options every admin endpoint shares: the guard, then its permission; its schemas and answers. */
  const withSchema = <E extends object, S extends object>(endpoint: Endpoint, summary: string, errors: ProblemName[], extra: E, success: S) => ({
    onRequest: requireCaller({ permission: ADMIN_ENDPOINTS[endpoint], recentSignIn: RECENT_SIGN_IN.has(endpoint) }),
    schema: {
      summary,
      description: `Needs the permission \`${ADMIN_ENDPOINTS[endpoint]}\`.`,
      tags: ['admin'],
      security: bearerAuth,
      ...extra,
      response: { ...success, ...problems(...COMMON, ...errors) },
    },
  });

  // Beyond the contract (README, Decisions): the console shows only the actions the viewer may
  // take, and the token's `roles` hint cannot say what a custom role allows.
  app.get(
    '/v1/users/me/permissions',
    {
      onRequest: guard,
      schema: {
        summary: "The caller's roles and the permissions they give, decided now (for clients that show only what the user may do)",
        tags: ['admin'],
        security: bearerAuth,
        response: { 200: MyPermissions, ...problems('invalid_token', 'mfa_setup_required') },
      },
    },
    async (request) => {
      const { roles, permissions } = await access.state(callerOf(request).userId);
      return { roles: [...roles], permissions: PERMISSIONS.filter((p) => permissions.has(p)) };
    },
  );

  app.get(
    '/v1/admin/users',
    withSchema('GET /v1/admin/users', 'Search users, newest first, paged', ['validation_failed'], { querystring: UserSearchQuery }, { 200: AdminUserList }),
    async (request) => {
      const q = request.query;
      if (q.before !== undefined && decodeCursor(q.before) === undefined) throw validationFailed([{ field: 'before', message: 'must be the `next` of the previous page' }]);
      return users.search({
        q: q.q,
        status: q.status,
        role: q.role,
        emailVerified: q.email_verified === undefined ? undefined : q.email_verified === 'true',
        createdAfter: q.created_after === undefined ? undefined : new Date(q.created_after),
        createdBefore: q.created_before === undefined ? undefined : new Date(q.created_before),
        limit: q.limit === undefined ? 50 : Number(q.limit),
        before: q.before,
      });
    },
  );

  app.post(
    '/v1/admin/users',
    withSchema('POST /v1/admin/users', 'Create a user (optionally with roles, a password or an invitation mail)', [...WITH_BODY, 'weak_password', ...TAKEN, 'reauthentication_required'], { body: NewUserBody }, { 201: AdminUser }),
    async (request, reply) => {
      const user = await users.create(actorOf(request), request.body);
      return reply.code(201).header('location', `/v1/admin/users/${user.id}`).send(user);
    },
  );

  app.get('/v1/admin/users/:id', withSchema('GET /v1/admin/users/:id', 'A user, as administrators see it', ['not_found'], { params: UserIdParams }, { 200: AdminUser }), async (request) =>
    users.get(userId(request.params)),
  );

  app.patch(
    '/v1/admin/users/:id',
    withSchema('PATCH /v1/admin/users/:id', "Edit a user's profile, or mark the email verified", [...WITH_BODY, 'not_found', ...TAKEN], { params: UserIdParams, body: UpdateUserBody }, { 200: AdminUser }),
    async (request) => users.update(actorOf(request), userId(request.params), request.body),
  );

  app.post(
    '/v1/admin/users/:id/disable',
    {
      ...withSchema('POST /v1/admin/users/:id/disable', 'Disable a user (optional `reason`): every session ends at once', [...WITH_BODY, 'not_found', 'last_admin'], { params: UserIdParams, body: DisableBody }, { 200: AdminUser }),
      preValidation: emptyBodyIsObject,
    },
    async (request) => users.disable(actorOf(request), userId(request.params), request.body.reason ?? null),
  );

  app.post('/v1/admin/users/:id/enable', withSchema('POST /v1/admin/users/:id/enable', 'Enable a disabled user', ['not_found'], { params: UserIdParams }, { 200: AdminUser }), async (request) =>
    users.enable(actorOf(request), userId(request.params)),
  );

  app.put(
    '/v1/admin/users/:id/password',
    withSchema('PUT /v1/admin/users/:id/password', "Set a user's password (needs a recent sign-in)", [...WITH_BODY, 'weak_password', 'password_reused', 'not_found', 'reauthentication_required'], { params: UserIdParams, body: SetPasswordBody }, { 204: NoContent }),
    async (request, reply) => {
      await users.setPassword(actorOf(request), userId(request.params), request.body.new_password, request.body.revoke_sessions ?? true);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/admin/users/:id/password-reset',
    withSchema('POST /v1/admin/users/:id/password-reset', 'Mail the user a password reset link', ['not_found'], { params: UserIdParams }, { 202: NoContent }),
    async (request, reply) => {
      await users.sendPasswordReset(actorOf(request), userId(request.params));
      return reply.code(202).send(null);
    },
  );

  app.delete(
    '/v1/admin/users/:id/mfa',
    withSchema('DELETE /v1/admin/users/:id/mfa', "Turn off a user's TOTP and recovery codes (needs a recent sign-in)", ['not_found', 'reauthentication_required'], { params: UserIdParams }, { 204: NoContent }),
    async (request, reply) => {
      await users.disableMfa(actorOf(request), userId(request.params));
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/admin/users/:id/passkeys/:pid',
    withSchema('DELETE /v1/admin/users/:id/passkeys/:pid', "Remove one of a user's passkeys (needs a recent sign-in)", ['not_found', 'reauthentication_required'], { params: UserPasskeyParams }, { 204: NoContent }),
    async (request, reply) => {
      await users.removePasskey(actorOf(request), userId(request.params), request.params.pid);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/users/:id/sessions',
    withSchema('GET /v1/admin/users/:id/sessions', "A user's active sessions, newest first", ['not_found'], { params: UserIdParams }, { 200: AdminSessionList }),
    async (request) => ({ sessions: await users.sessions(userId(request.params)) }),
  );

  app.delete(
    '/v1/admin/users/:id/sessions',
    withSchema('DELETE /v1/admin/users/:id/sessions', "End every session of a user", ['not_found'], { params: UserIdParams }, { 204: NoContent }),
    async (request, reply) => {
      await users.revokeSessions(actorOf(request), userId(request.params));
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/admin/users/:id/sessions/:sid',
    withSchema('DELETE /v1/admin/users/:id/sessions/:sid', "End one session of a user", ['not_found'], { params: UserSessionParams }, { 204: NoContent }),
    async (request, reply) => {
      await users.revokeSession(actorOf(request), userId(request.params), request.params.sid);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/users/:id/events',
    withSchema('GET /v1/admin/users/:id/events', "A user's security events, newest first, paged", ['validation_failed', 'not_found'], { params: UserIdParams, querystring: UserEventsQuery }, { 200: AdminEventList }),
    async (request) => users.events(userId(request.params), { limit: request.query.limit ? Number(request.query.limit) : 20, before: request.query.before }),
  );

  app.put(
    '/v1/admin/users/:id/roles',
    withSchema('PUT /v1/admin/users/:id/roles', "Replace a user's roles (admin: needs a recent sign-in)", [...WITH_BODY, 'not_found', 'last_admin', 'reauthentication_required'], { params: UserIdParams, body: RolesBody }, { 200: RolesAnswer }),
    async (request) => ({ roles: await roles.setUserRoles(actorOf(request), userId(request.params), request.body.roles) }),
  );

  app.delete(
    '/v1/admin/users/:id',
    withSchema('DELETE /v1/admin/users/:id', 'Delete a user, as self-service deletion does (needs a recent sign-in)', ['not_found', 'last_admin', 'reauthentication_required'], { params: UserIdParams }, { 204: NoContent }),
    async (request, reply) => {
      await users.delete(actorOf(request), userId(request.params));
      return reply.code(204).send(null);
    },
  );

  app.get('/v1/admin/roles', withSchema('GET /v1/admin/roles', 'Every role, with its permissions and how many users hold it', [], {}, { 200: RoleList }), async () => ({ roles: await roles.list() }));

  app.post(
    '/v1/admin/roles',
    withSchema('POST /v1/admin/roles', 'Make a role', [...WITH_BODY, 'role_exists'], { body: NewRoleBody }, { 201: Role }),
    async (request, reply) => {
      const role = await roles.create(actorOf(request), request.body);
      return reply.code(201).header('location', `/v1/admin/roles/${role.name}`).send(role);
    },
  );

  app.patch(
    '/v1/admin/roles/:name',
    withSchema('PATCH /v1/admin/roles/:name', "Change a role's description or permissions", [...WITH_BODY, 'not_found', 'role_builtin'], { params: RoleParams, body: UpdateRoleBody }, { 200: Role }),
    async (request) => roles.update(actorOf(request), request.params.name, request.body),
  );

  app.delete(
    '/v1/admin/roles/:name',
    withSchema('DELETE /v1/admin/roles/:name', 'Delete a role: every holder loses it', ['not_found', 'role_builtin'], { params: RoleParams }, { 204: NoContent }),
    async (request, reply) => {
      await roles.delete(actorOf(request), request.params.name);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/events',
    withSchema('GET /v1/admin/events', 'The whole audit log, newest first, paged', ['validation_failed'], { querystring: EventsQuery }, { 200: AdminEventList }),
    async (request) => {
      const q = request.query;
      return users.allEvents({ userId: q.user_id, actorId: q.actor_id, type: q.type, before: q.before, limit: q.limit ? Number(q.limit) : 20 });
    },
  );

  // Organizations (API-ORGS.md), read by support as users are.
  app.get(
    '/v1/admin/orgs',
    withSchema('GET /v1/admin/orgs', 'Every organization, newest first, paged (`limit`, `before`)', ['validation_failed'], { querystring: AdminOrgQuery }, { 200: Type.Object({ orgs: Type.Array(Org), next: Type.Union([Type.String(), Type.Null()]) }) }),
    async (request) => {
      const page = await listAllOrgs(db, Number(request.query.limit ?? 50), request.query.before);
      return { orgs: page.orgs.map(toOrg), next: page.next };
    },
  );

  app.get(
    '/v1/admin/orgs/:id',
    withSchema('GET /v1/admin/orgs/:id', 'An organization', ['not_found'], { params: OrgParams }, { 200: Org }),
    async (request) => {
      const row = /^[1-9][0-9]{0,17}$/.test(request.params.id) ? await findOrg(db, request.params.id) : undefined;
      if (!row) throw new AppError('not_found', { detail: 'There is no organization with that id.' });
      return toOrg(row);
    },
  );
}

/** What the admin feature takes from the shared dependencies (src/dependencies.ts). */
export interface AdminFeatureDeps extends Omit<AccountDeletionDeps, 'pseudonymKey'> {
  access: AccessControl;
  requireCaller: RequireCaller;
  reauth: AccountDeletionDeps['reauth'] & { recentSignIn(caller: { userId: string; sessionId: string }): Promise<void> };
  hasher: ConstructorParameters<typeof AdminUsersService>[1]['hasher'];
  credentials: ConstructorParameters<typeof AdminUsersService>[1]['credentials'];
  revocation: ConstructorParameters<typeof AdminUsersService>[1]['revocation'];
  mailer: ConstructorParameters<typeof AdminUsersService>[1]['mailer'];
  jobs: ConstructorParameters<typeof AdminUsersService>[1]['jobs'];
  clock: Clock;
  events: EventRecorder;
  config: Pick<Config, 'publicUrl' | 'passwordMinLength' | 'sessionIdleTtlS'>;
  secret(name: string): Promise<Buffer>;
}

/** The admin API (API-ADMIN.md): users, roles, the audit log, behind the permission guard. */
export const adminFeature: Feature<AdminFeatureDeps> = async (app, deps) => {
  const { db, access, audit, config } = deps;
  const roles = new RolesService(db, access, audit, deps.reauth, deps.events);
  const deletion = new AccountDeletion({ ...deps, pseudonymKey: await deps.secret('audit_pseudonym') });
  const users = new AdminUsersService(
    db,
    { hasher: deps.hasher, credentials: deps.credentials, revocation: deps.revocation, invalidation: deps.invalidation, deletion, mailer: deps.mailer, jobs: deps.jobs, audit, access, roles, clock: deps.clock, events: deps.events },
    { publicUrl: config.publicUrl, passwordMinLength: config.passwordMinLength, sessionIdleTtlS: config.sessionIdleTtlS },
  );
  adminRoutes(app, { db, users, roles, access, guard: deps.requireCaller(), requireCaller: deps.requireCaller });
};
