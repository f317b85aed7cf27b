import { Type, type Static } from 'typebox';
import { Id, Timestamp } from '../http/schemas.js';
import { Matching } from '../http/validation.js';
import { Dob, Email, Name, NewPassword, User, Username } from '../users/schemas.js';
import { PERMISSIONS, ROLE_NAME } from './permissions.js';

// API-ADMIN.md. Query parameters are strings (coerceTypes is off): each pattern is its range.

export const RoleName = Matching(ROLE_NAME, 'must be a role name: a lower-case letter, then 1 to 31 lower-case letters, digits, "_" or "-"', { examples: ['support_lead'] });
export const PermissionName = Type.Union(
  PERMISSIONS.map((p) => Type.Literal(p)),
  { description: 'A permission of the catalogue (API-ADMIN.md).' },
);
const Limit = Matching('^(?:[1-9]|[1-9][0-9]|100)$', 'must be an integer from 1 to 100', { description: '1 to 100, default 50.' });
const EventId = Matching('^[1-9][0-9]{0,17}$', 'must be the `next` of the previous page, a positive integer', { description: 'The `next` of the previous page.' });
const UserIdFilter = Matching('^[1-9][0-9]{0,18}$', 'must be a user id, digits only');

export const UserIdParams = Type.Object({ id: Type.String() });
export const UserSessionParams = Type.Object({ id: Type.String(), sid: Type.String() });
export const UserPasskeyParams = Type.Object({ id: Type.String(), pid: Type.String() });
export const RoleParams = Type.Object({ name: Type.String() });

export const UserSearchQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'A username or email starting with it, or a name containing it, ignoring case.' })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')])),
    role: Type.Optional(RoleName),
    email_verified: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
    created_after: Type.Optional(Type.String({ format: 'date-time' })),
    created_before: Type.Optional(Type.String({ format: 'date-time' })),
    limit: Type.Optional(Limit),
    before: Type.Optional(Matching('^[A-Za-z0-9_-]{1,64}$', 'must be the `next` of the previous page', { description: 'The `next` of the previous page (opaque).' })),
  },
  { additionalProperties: false },
);
export type UserSearchQuery = Static<typeof UserSearchQuery>;

export const AdminUser = Type.Object({
  ...User.properties,
  disabled_at: Type.Union([Timestamp, Type.Null()]),
  disabled_reason: Type.Union([Type.String(), Type.Null()]),
  roles: Type.Array(Type.String()),
  mfa: Type.Object({ totp: Type.Boolean(), passkeys: Type.Integer() }),
  has_password: Type.Boolean(),
  last_sign_in_at: Type.Union([Timestamp, Type.Null()], { description: 'When the newest session still on record was opened.' }),
});

export const AdminUserList = Type.Object({
  users: Type.Array(AdminUser),
  next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page; null on the last page.' }),
});

export const NewUserBody = Type.Object(
  {
    username: Username,
    name: Name,
    dob: Dob,
    email: Email,
    password: Type.Optional(NewPassword),
    email_verified: Type.Optional(Type.Boolean()),
    roles: Type.Optional(Type.Array(RoleName, { maxItems: 50 })),
    send_invite: Type.Optional(Type.Boolean({ description: 'Mail a link to choose a password (valid 72 hours).' })),
  },
  { additionalProperties: false },
);
export type NewUserBody = Static<typeof NewUserBody>;

export const UpdateUserBody = Type.Object(
  { username: Type.Optional(Username), name: Type.Optional(Name), dob: Type.Optional(Dob), email: Type.Optional(Email), email_verified: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateUserBody = Static<typeof UpdateUserBody>;

/** Optional: an empty body is `{}`. */
export const DisableBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false });

export const SetPasswordBody = Type.Object(
  { new_password: NewPassword, revoke_sessions: Type.Optional(Type.Boolean({ description: 'End every session of the user (default true).' })) },
  { additionalProperties: false },
);

export const AdminSession = Type.Object({
  id: Id,
  created_at: Timestamp,
  last_used_at: Timestamp,
  expires_at: Timestamp,
  is_active: Type.Boolean(),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  amr: Type.Array(Type.String(), { description: 'How the session was signed in (RFC 8176).' }),
});
export const AdminSessionList = Type.Object({ sessions: Type.Array(AdminSession) });

export const RolesBody = Type.Object({ roles: Type.Array(RoleName, { maxItems: 50 }) }, { additionalProperties: false });
export const RolesAnswer = Type.Object({ roles: Type.Array(Type.String()) });

export const Role = Type.Object({
  name: Type.String(),
  description: Type.String(),
  permissions: Type.Array(Type.String()),
  builtin: Type.Boolean(),
  holders: Type.Integer(),
});
export const RoleList = Type.Object({ roles: Type.Array(Role) });

export const NewRoleBody = Type.Object(
  { name: RoleName, description: Type.Optional(Type.String({ maxLength: 200 })), permissions: Type.Array(PermissionName, { maxItems: PERMISSIONS.length * 2 }) },
  { additionalProperties: false },
);
export const UpdateRoleBody = Type.Object(
  { description: Type.Optional(Type.String({ maxLength: 200 })), permissions: Type.Optional(Type.Array(PermissionName, { maxItems: PERMISSIONS.length * 2 })) },
  { additionalProperties: false, minProperties: 1 },
);

export const UserEventsQuery = Type.Object({ limit: Type.Optional(Limit), before: Type.Optional(EventId) }, { additionalProperties: false });
export const EventsQuery = Type.Object(
  {
    user_id: Type.Optional(UserIdFilter),
    actor_id: Type.Optional(UserIdFilter),
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    limit: Type.Optional(Limit),
    before: Type.Optional(EventId),
  },
  { additionalProperties: false },
);

export const AdminEventList = Type.Object({
  events: Type.Array(
    Type.Object({
      id: Id,
      type: Type.String(),
      occurred_at: Timestamp,
      user_id: Type.Union([Id, Type.Null()]),
      actor_id: Type.Union([Id, Type.Null()]),
      session_id: Type.Union([Id, Type.Null()]),
      ip: Type.Union([Type.String(), Type.Null()]),
      user_agent: Type.Union([Type.String(), Type.Null()]),
      details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    }),
  ),
  next: Type.Union([Id, Type.Null()]),
});

export const MyPermissions = Type.Object({
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String(), { description: 'The permissions the roles give, from the catalogue.' }),
});
