import type { Kysely } from 'kysely';
import { deleteInBatches } from '../db/batched-delete.js';
import type { Database } from '../db/schema.js';

export interface InstanceRecord {
  instance_id: string;
  issuer: string;
  audience: string;
}

/** The issuers and audiences other instances signed for, seen since `since`. */
export function otherTokenSettingsSeen(db: Kysely<Database>, instanceId: string, since: Date) {
  return db
    .selectFrom('service_instances')
    .select(['issuer', 'audience'])
    .distinct()
    .where('instance_id', '<>', instanceId)
    .where('seen_at', '>=', since)
    .orderBy('issuer')
    .orderBy('audience')
    .execute();
}

export async function recordInstance(db: Kysely<Database>, instance: InstanceRecord, now: Date): Promise<void> {
  await db.insertInto('service_instances').values({ ...instance, started_at: now, seen_at: now }).execute();
}

export async function markInstanceSeen(db: Kysely<Database>, instanceId: string, now: Date): Promise<void> {
  await db.updateTable('service_instances').set({ seen_at: now }).where('instance_id', '=', instanceId).execute();
}

export async function forgetInstance(db: Kysely<Database>, instanceId: string): Promise<void> {
  await db.deleteFrom('service_instances').where('instance_id', '=', instanceId).execute();
}

/** Drops instances not seen since `before` (stopped, or crashed). */
export function pruneInstances(db: Kysely<Database>, before: Date): Promise<number> {
  return deleteInBatches(db, { table: 'service_instances', key: ['instance_id'], oldestFirst: 'seen_at', where: (eb) => eb('seen_at', '<', before) });
}
