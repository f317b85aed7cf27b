import { Type, type Static } from 'typebox';
import { Id, Timestamp } from '../http/schemas.js';
import { Matching } from '../http/validation.js';
import { Email } from '../users/schemas.js';
import { ORG_PERMISSIONS, ORG_ROLE_NAME } from './permissions.js';

// API-ORGS.md. Bodies take no other fields (additionalProperties: false).

export const OrgName = Type.String({ minLength: 1, maxLength: 100, description: '1 to 100 characters.', examples: ['Analytical Engines'] });
export const Slug = Matching('^[a-z0-9][a-z0-9-]{1,38}$', 'must be 2 to 39 lower-case letters, digits or "-", not starting with "-"', { examples: ['engines'] });
// The same pattern and words as the service-wide roles' names (src/admin/schemas.ts).
export const OrgRoleName = Matching(ORG_ROLE_NAME, 'must be a role name: a lower-case letter, then 1 to 31 lower-case letters, digits, "_" or "-"', { examples: ['member'] });
export const OrgPermissionName = Type.Union(
  ORG_PERMISSIONS.map((p) => Type.Literal(p)),
  { description: 'An organization permission (API-ORGS.md).' },
);

export const Org = Type.Object({
  id: Id,
  name: Type.String(),
  slug: Type.String(),
  created_at: Timestamp,
  members: Type.Integer({ description: 'How many members it has.' }),
});
export type Org = Static<typeof Org>;

export const MyOrg = Type.Object({ ...Org.properties, role: Type.String({ description: "The caller's role in it." }) });
export const MyOrgList = Type.Object({ orgs: Type.Array(MyOrg) });

export const Membership = Type.Object({
  user: Type.Object({ id: Id, username: Type.String(), name: Type.String(), email: Type.String() }),
  role: Type.String(),
  joined_at: Timestamp,
});
export type Membership = Static<typeof Membership>;
export const MemberList = Type.Object({ members: Type.Array(Membership), next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page; null on the last.' }) });

export const Invitation = Type.Object({ id: Id, email: Type.String(), role: Type.String(), expires_at: Timestamp });
export type Invitation = Static<typeof Invitation>;
export const InvitationList = Type.Object({ invitations: Type.Array(Invitation) });

export const OrgRole = Type.Object({ name: Type.String(), permissions: Type.Array(Type.String()), builtin: Type.Boolean() });
export const OrgRoleList = Type.Object({ roles: Type.Array(OrgRole) });

export const CreateOrgBody = Type.Object({ name: OrgName, slug: Slug }, { additionalProperties: false });
export type CreateOrgBody = Static<typeof CreateOrgBody>;
export const UpdateOrgBody = Type.Object({ name: Type.Optional(OrgName), slug: Type.Optional(Slug) }, { additionalProperties: false, minProperties: 1 });
export type UpdateOrgBody = Static<typeof UpdateOrgBody>;
export const MemberChangeBody = Type.Object({ role: OrgRoleName }, { additionalProperties: false });
export const InvitationBody = Type.Object({ email: Email, role: OrgRoleName }, { additionalProperties: false });
// A token of the wrong shape is answered like an unknown one: 400 invalid_invitation.
export const AcceptBody = Type.Object({ token: Type.String({ description: 'The token from the link in the mail (after #token=).' }) }, { additionalProperties: false });
export const SwitchBody = Type.Object(
  { org_id: Type.Union([Id, Type.Null()], { description: 'The organization the session speaks for from now on; null for none.' }) },
  { additionalProperties: false },
);
export const CustomRoleBody = Type.Object({ name: OrgRoleName, permissions: Type.Array(OrgPermissionName, { minItems: 1, maxItems: ORG_PERMISSIONS.length }) }, { additionalProperties: false });

export const OrgParams = Type.Object({ id: Type.String() });
export const MemberParams = Type.Object({ id: Type.String(), user_id: Type.String() });
export const InvitationParams = Type.Object({ id: Type.String(), iid: Type.String() });
export const RoleParams = Type.Object({ id: Type.String(), name: Type.String() });
export const MemberQuery = Type.Object(
  {
    limit: Type.Optional(Matching('^(?:[1-9]|[1-9][0-9]|100)$', 'must be an integer from 1 to 100', { description: '1 to 100, default 50.' })),
    before: Type.Optional(Matching('^[1-9][0-9]{0,17}$', 'must be the `next` of the previous page, a positive integer', { description: 'The `next` of the previous page.' })),
  },
  { additionalProperties: false },
);
export const AdminOrgQuery = MemberQuery;
