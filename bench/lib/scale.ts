import { CompiledQuery, sql, type Kysely, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';
import type { Database } from '../../src/db/schema.js';

/**
 * The million-user bench (`npm run bench -- --only=scale`): a PostgreSQL database grown to N
 * users with history in proportion, made by PostgreSQL itself (generate_series, as
 * admin-search.ts does), and the plans of the statements the hot routes run.
 */

/** History per user: sessions that ended, and audit events. */
export const ENDED_SESSIONS_PER_USER = 2;
export const AUDIT_EVENTS_PER_USER = 3;
const CHUNK = 100_000;

/** A seeded user's name: scale_<n>, n from 0. */
export const scaleUsername = (n: number) => `scale_${n}`;

/**
 * Seeds `count` users named scale_<n>, each with a current password (`phc`, one hash for all),
 * ENDED_SESSIONS_PER_USER ended sessions and AUDIT_EVENTS_PER_USER audit events over the last
 * 300 days, then fresh statistics. PostgreSQL only.
 */
export async function seedScale(db: Kysely<Database>, count: number, phc: string, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  // Names share no word with usernames: a username search's name branch (trigrams) then finds
  // one user, as it would in real data, instead of every name holding the same word.
  // The service's statement timeout is for requests; a chunk of 100,000 users may take longer.
  await db.connection().execute(async (conn) => {
    await sql`set statement_timeout = 0`.execute(conn);
    for (let start = 0; start < count; start += CHUNK) {
      const end = Math.min(count, start + CHUNK) - 1;
      await sql`with made as (
          insert into users (username, name, dob, email)
          select 'scale_' || n, 'Bench Person ' || n, date '1990-01-01', 'scale_' || n || '@example.com'
          from generate_series(${start}::int, ${end}::int) as n
          returning user_id
        ), credentials as (
          insert into user_credentials (user_id, hashed_password, is_current) select user_id, ${phc}, true from made
        ), sessions as (
          insert into user_sessions (user_id, created_at, is_active, expires_at, last_used_at, ended_at, end_reason, ip, user_agent, refresh_token_hash)
          select user_id, now() - make_interval(days => 10 * k + (user_id % 200)::int), false, now() - make_interval(days => 10 * k + (user_id % 200)::int) + interval '30 days',
                 now() - make_interval(days => 10 * k + (user_id % 200)::int), now() - make_interval(days => 10 * k + (user_id % 200)::int) + interval '1 hour', 'logout',
                 '198.51.100.' || (user_id % 250), 'scale-bench', md5(user_id || ':' || k)
          from made, generate_series(1, ${ENDED_SESSIONS_PER_USER}::int) as k
        )
        insert into audit_events (occurred_at, event, user_id, ip, user_agent)
        select now() - make_interval(days => 5 * k + (user_id % 280)::int), 'login_succeeded', user_id, '198.51.100.' || (user_id % 250), 'scale-bench'
        from made, generate_series(1, ${AUDIT_EVENTS_PER_USER}::int) as k`.execute(conn);
      if (count > CHUNK) log(`    ${end + 1} users...`);
    }
    await sql`analyze`.execute(conn);
    await sql`reset statement_timeout`.execute(conn);
  });
  log(`    seeded ${count} users, ${count * ENDED_SESSIONS_PER_USER} ended sessions and ${count * AUDIT_EVENTS_PER_USER} audit events in ${Math.round((Date.now() - started) / 1000)} s`);
}

/**
 * Notes every distinct statement a Kysely instance compiles, with its parameters, to EXPLAIN
 * later: `db.withPlugin(capture)` gives the app a database handle that records what it runs.
 */
export class StatementCapture implements KyselyPlugin {
  readonly statements = new Map<string, readonly unknown[]>();
  #db: Kysely<Database> | undefined;
  /** Every query compiled, subqueries too; only those whose result comes back were run as statements. */
  #compiled = new WeakMap<object, { sql: string; parameters: readonly unknown[] }>();

  bind(db: Kysely<Database>): Kysely<Database> {
    this.#db = db;
    return db.withPlugin(this);
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const compiled = this.#db!.getExecutor().compileQuery(args.node, args.queryId);
    this.#compiled.set(args.queryId, { sql: compiled.sql, parameters: compiled.parameters });
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const ran = this.#compiled.get(args.queryId);
    if (ran && !this.statements.has(ran.sql)) this.statements.set(ran.sql, ran.parameters);
    return args.result;
  }
}

/** The tables that must never be read whole on a request's path. */
export const BIG_TABLES = ['users', 'user_sessions', 'user_credentials', 'audit_events'] as const;

export interface ExplainedStatement {
  sql: string;
  plan: string;
  /** The big tables this plan reads with a sequential scan. */
  seqScans: string[];
}

/** EXPLAIN (no ANALYZE: writes are planned, not done) of each captured statement that reads or writes rows. */
export async function explainAll(db: Kysely<Database>, statements: Map<string, readonly unknown[]>): Promise<ExplainedStatement[]> {
  const out: ExplainedStatement[] = [];
  for (const [text, parameters] of statements) {
    if (!/^\s*(select|insert|update|delete|with)\b/i.test(text)) continue;
    const result = await db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain ${text}`, [...parameters]));
    const plan = result.rows.map((r) => r['QUERY PLAN']).join('\n');
    const seqScans = BIG_TABLES.filter((t) => new RegExp(`Seq Scan on ${t}\\b`).test(plan));
    out.push({ sql: text, plan, seqScans });
  }
  return out;
}
