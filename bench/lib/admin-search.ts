import { sql, type Kysely } from 'kysely';
import { isMysql } from '../../src/db/dialect.js';
import type { Database } from '../../src/db/schema.js';
import { searchUserIds } from '../../src/admin/repository.js';

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
  if (!isMysql(db)) await seedInDatabase(db, count);
  else for (let start = 0; start < count; start += 1000) {
    const rows = Array.from({ length: Math.min(1000, count - start) }, (_, i) => {
      const n = start + i;
      return { username: `member_${n}`, name: `${FIRST[n % FIRST.length]} ${LAST[(n * 7) % LAST.length]} ${rareWord(n)}`, dob: '1990-01-01', email: `m${n}@corp${n % 10}.example.com` };
    });
    await db.insertInto('users').values(rows).execute();
  }
  // Fresh statistics, as autovacuum would have them on a database that grew to this size.
  await db.connection().execute(async (conn) => {
    if (!isMysql(conn)) await sql`set statement_timeout = 0`.execute(conn);
    await sql.raw(isMysql(conn) ? 'analyze table users' : 'analyze users').execute(conn);
    if (!isMysql(conn)) await sql`reset statement_timeout`.execute(conn);
  });
  log(`    seeded ${count} users for the search in ${Math.round((Date.now() - started) / 1000)} s`);
}

/**
 * The same users made by PostgreSQL itself (generate_series, 100,000 a statement): a million in
 * about a minute where a million rows sent from here take several. rareWord in SQL: n in base 36,
 * its digits spelled as letters.
 */
async function seedInDatabase(db: Kysely<Database>, count: number): Promise<void> {
  const first = `(array[${FIRST.map((w) => `'${w}'`).join(',')}])`;
  const last = `(array[${LAST.map((w) => `'${w}'`).join(',')}])`;
  // A temporary function lives on one connection: every statement here runs on that one.
  // The service's statement timeout is for requests; a batch of 100,000 rows may take longer.
  await db.connection().execute(async (conn) => {
    await sql`set statement_timeout = 0`.execute(conn);
    await sql.raw(`create function pg_temp.base36(n bigint) returns text language plpgsql immutable as $$
      declare s text := '';
      begin
        if n = 0 then return '0'; end if;
        while n > 0 loop s := substr('0123456789abcdefghijklmnopqrstuvwxyz', (n % 36)::int + 1, 1) || s; n := n / 36; end loop;
        return s;
      end $$`).execute(conn);
    for (let start = 0; start < count; start += 100_000) {
      const end = Math.min(count, start + 100_000) - 1;
      await sql.raw(`insert into users (username, name, dob, email)
        select 'member_' || n, ${first}[n % ${FIRST.length} + 1] || ' ' || ${last}[(n * 7) % ${LAST.length} + 1] || ' ' || translate('q' || pg_temp.base36(n) || 'x', '0123456789', 'abcdefghij'),
               '1990-01-01', 'm' || n || '@corp' || (n % 10) || '.example.com'
        from generate_series(${start}, ${end}) as n`).execute(conn);
    }
    await sql`reset statement_timeout`.execute(conn);
  });
}

/** The search's own time in the database (the repository's query, no HTTP), median and worst of 25, per kind. */
export async function searchQueryTimes(db: Kysely<Database>, kind: 'prefix' | 'common' | 'rare', count: number): Promise<{ medianMs: number; maxMs: number }> {
  const next = searchQueries(kind, count);
  const times: number[] = [];
  for (let i = 0; i < 25; i++) {
    const q = new URLSearchParams(next().split('?')[1]).get('q')!;
    const started = process.hrtime.bigint();
    await searchUserIds(db, { q, limit: 50 });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { medianMs: Math.round(times[12]! * 10) / 10, maxMs: Math.round(times.at(-1)! * 10) / 10 };
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
