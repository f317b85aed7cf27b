import { sql, type Kysely } from 'kysely';
import { isMysql } from '../../src/db/dialect.js';
import type { Database } from '../../src/db/schema.js';

/**
 * The admin search's bench (GET /v1/admin/users?q=...): users with names from a small list plus
 * a word of their own, so a query can match many users (a common name) or one (a rare word, the
 * case that scans everything without an index), and usernames and emails to match by prefix.
 */
const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Margaret', 'Ken', 'Radia', 'Tim', 'Hedy'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Hamilton', 'Thompson', 'Perlman', 'Lee', 'Lamarr'];

/** A word of user n's own in their name: letters only, so no other name holds it. */
export function rareWord(n: number): string {
  return `q${n.toString(36)}x`.replace(/[0-9]/g, (d) => 'abcdefghij'[Number(d)]!);
}

export async function seedSearchUsers(db: Kysely<Database>, count: number, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  for (let start = 0; start < count; start += 1000) {
    const rows = Array.from({ length: Math.min(1000, count - start) }, (_, i) => {
      const n = start + i;
      return { username: `member_${n}`, name: `${FIRST[n % FIRST.length]} ${LAST[(n * 7) % LAST.length]} ${rareWord(n)}`, dob: '1990-01-01', email: `m${n}@corp${n % 10}.example.com` };
    });
    await db.insertInto('users').values(rows).execute();
  }
  // Fresh statistics, as autovacuum would have them on a database that grew to this size.
  await sql.raw(isMysql(db) ? 'analyze table users' : 'analyze users').execute(db);
  log(`    seeded ${count} users for the search in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** Makes the seeded user `username` an admin (the operator's roles grant, as SQL). */
export async function makeAdmin(db: Kysely<Database>, username: string): Promise<void> {
  const user = await db.selectFrom('users').select('user_id').where('username', '=', username).executeTakeFirstOrThrow();
  await db.insertInto('user_roles').values({ user_id: user.user_id, role_name: 'admin' }).execute();
}

/** The queries of one kind, rotating over the seeded users. */
export function searchQueries(kind: 'prefix' | 'common' | 'rare', count: number): () => string {
  let i = 0;
  return () => {
    const n = (i++ * 7919) % count;
    const q = kind === 'prefix' ? `member_${n}` : kind === 'common' ? LAST[n % LAST.length]!.slice(1, 5).toLowerCase() : rareWord(n);
    return `/v1/admin/users?q=${encodeURIComponent(q)}&limit=50`;
  };
}

/** How PostgreSQL answers a rare-word search (EXPLAIN ANALYZE): which index does it, and in how long. */
export async function searchPlan(db: Kysely<Database>, word: string): Promise<string> {
  if (isMysql(db)) return '';
  const { rows } = await sql<{ 'QUERY PLAN': string }>`explain analyze select user_id from users where username_key like ${`${word}%`} or email_key like ${`${word}%`} or lower(name) like ${`%${word}%`} order by user_id desc limit 51`.execute(db);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}
