import type { Kysely } from 'kysely';
import { Type, type Static } from 'typebox';
import type { AuditEvent, AuditLog } from '../audit/audit-log.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import { Timestamp } from '../http/schemas.js';
import type { Caller } from '../core/caller.js';
import type { Clock } from '../core/clock.js';
import { listIdentities } from '../federation/repository.js';
import { findUserById, toUser } from '../users/repository.js';
import { User } from '../users/schemas.js';
import { personalData } from './repository.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const MyData = Type.Object({
  exported_at: Timestamp,
  profile: User,
  sessions: Type.Array(
    Type.Object({
      id: Type.String(),
      created_at: Timestamp,
      last_used_at: Timestamp,
      expires_at: Timestamp,
      ended_at: Nullable(Timestamp),
      end_reason: Nullable(Type.String()),
      active: Type.Boolean(),
      user_agent: Nullable(Type.String()),
      ip: Nullable(Type.String()),
      amr: Type.Array(Type.String()),
    }),
  ),
  events: Type.Array(
    Type.Object({
      id: Type.String(),
      type: Type.String(),
      occurred_at: Timestamp,
      session_id: Nullable(Type.String()),
      ip: Nullable(Type.String()),
      user_agent: Nullable(Type.String()),
      details: Nullable(Type.Record(Type.String(), Type.Unknown())),
    }),
  ),
  passkeys: Type.Array(Type.Object({ name: Type.String(), created_at: Timestamp, last_used_at: Nullable(Timestamp), device_type: Type.String(), backed_up: Type.Boolean() })),
  authenticator_app: Nullable(Type.Object({ created_at: Timestamp, confirmed_at: Nullable(Timestamp) })),
  recovery_codes_left: Type.Integer(),
  identities: Type.Array(
    Type.Object({ provider: Type.String(), subject: Type.String(), email: Nullable(Type.String()), email_verified: Type.Boolean(), created_at: Timestamp, last_used_at: Nullable(Timestamp) }),
    { description: 'Accounts at other providers linked to this one (sign-in with another provider).' },
  ),
});
export type MyData = Static<typeof MyData>;

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/**
 * GET /v1/users/me/export: everything the service keeps about the caller, as JSON (the right to
 * data portability, GDPR art. 20); no hash, token or secret, which would only help an attacker.
 */
export async function exportMyData(db: Kysely<Database>, audit: AuditLog, clock: Clock, caller: Caller): Promise<MyData> {
  const user = await findUserById(db, caller.userId);
  if (!user) throw new AppError('invalid_token');
  const [data, identities] = await Promise.all([personalData(db, caller.userId), listIdentities(db, caller.userId)]);
  // Every event of the user, newest first, as GET /v1/users/me/events pages them.
  const events: AuditEvent[] = [];
  let before: string | undefined;
  do {
    const page = await audit.listForUser(caller.userId, 100, before);
    events.push(...page.events);
    before = page.next ?? undefined;
  } while (before !== undefined);
  await audit.record('data_exported', caller);
  return {
    exported_at: new Date(clock.now()).toISOString(),
    profile: toUser(user),
    sessions: data.sessions.map((s) => ({
      id: String(s.session_id),
      created_at: s.created_at.toISOString(),
      last_used_at: s.last_used_at.toISOString(),
      expires_at: s.expires_at.toISOString(),
      ended_at: iso(s.ended_at),
      end_reason: s.end_reason,
      active: s.is_active,
      user_agent: s.user_agent,
      ip: s.ip,
      amr: s.amr.split(' ').filter(Boolean),
    })),
    events,
    passkeys: data.passkeys.map((p) => ({ name: p.name, created_at: p.created_at.toISOString(), last_used_at: iso(p.last_used_at), device_type: p.device_type, backed_up: p.backed_up })),
    authenticator_app: data.totp ? { created_at: data.totp.created_at.toISOString(), confirmed_at: iso(data.totp.confirmed_at) } : null,
    recovery_codes_left: data.recoveryCodesLeft,
    identities: identities.map((i) => ({ provider: i.provider, subject: i.subject, email: i.email, email_verified: i.email_verified, created_at: i.created_at.toISOString(), last_used_at: iso(i.last_used_at) })),
  };
}
