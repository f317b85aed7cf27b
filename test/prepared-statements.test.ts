import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type Db } from '../src/db/create-db.js';
import { createServerDatabase, mysqlServer, serverUrl } from './helpers/app.js';

describe('prepared statements on a PostgreSQL server', { skip: serverUrl && !mysqlServer ? false : 'needs a PostgreSQL TEST_DATABASE_URL' }, () => {
  let server: Awaited<ReturnType<typeof createServerDatabase>>;
  let db: Db;

  before(async () => {
    server = await createServerDatabase(serverUrl!);
    // One connection, so that every statement below meets the ones prepared before it.
    db = await openDatabase({ databaseUrl: server.url, poolMax: 1, timeoutMs: 5000 });
  });
  after(async () => {
    await db?.close();
    await server?.drop();
  });

  const prepared = async () =>
    (await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(db.kysely)).rows;

  it('prepares each statement text once per connection and reuses it', async () => {
    const lookup = (n: number) => sql<{ n: number }>`select ${n}::int + 1 as n`.execute(db.kysely);
    assert.equal((await lookup(1)).rows[0]!.n, 2);
    assert.equal((await lookup(41)).rows[0]!.n, 42);
    const statements = (await prepared()).filter((s) => s.statement === 'select $1::int + 1 as n');
    assert.equal(statements.length, 1, 'one prepared statement for both calls');
    assert.match(statements[0]!.name, /^k\d+$/);
  });

  it('when a statement grows with its input (more than 64 values), then it runs unnamed', async () => {
    const values = Array.from({ length: 65 }, (_, i) => i);
    const sum = await sql<{ n: number }>`select ${sql.join(values.map((v) => sql`${v}::int`), sql` + `)} as n`.execute(db.kysely);
    assert.equal(sum.rows[0]!.n, (64 * 65) / 2);
    assert.ok(!(await prepared()).some((s) => s.statement.includes('$65')), 'no name for it');
  });

  it('when DB_PREPARED_STATEMENTS is off (a pooler in front), then nothing is prepared', async () => {
    const plain = await openDatabase({ databaseUrl: server.url, poolMax: 1, timeoutMs: 5000, preparedStatements: false });
    try {
      await sql`select 1 as one`.execute(plain.kysely);
      await sql`select ${2}::int as two`.execute(plain.kysely);
      const { rows } = await sql<{ n: string }>`select count(*) as n from pg_prepared_statements`.execute(plain.kysely);
      assert.equal(Number(rows[0]!.n), 0);
    } finally {
      await plain.close();
    }
  });

  it('when a migration changes the columns under a prepared statement, then a statement on its own is prepared afresh at once', async () => {
    await sql`create table widgets (id int primary key)`.execute(db.kysely);
    await sql`insert into widgets values (1)`.execute(db.kysely);
    const read = () => db.kysely.selectFrom('widgets' as never).selectAll().execute();
    assert.deepEqual(await read(), [{ id: 1 }]);
    await sql`alter table widgets add column label text default 'new'`.execute(db.kysely);
    assert.deepEqual(await read(), [{ id: 1, label: 'new' }]);
  });

  it('when that happens inside a transaction, then the transaction fails once, and its next attempt works', async () => {
    await sql`create table gadgets (id int primary key)`.execute(db.kysely);
    await sql`insert into gadgets values (1)`.execute(db.kysely);
    const read = () => db.kysely.transaction().execute((trx) => trx.selectFrom('gadgets' as never).selectAll().execute());
    assert.deepEqual(await read(), [{ id: 1 }]);
    await sql`alter table gadgets add column label text default 'new'`.execute(db.kysely);
    // A transaction that PostgreSQL has failed cannot go on: it is the caller's to try again.
    await assert.rejects(read(), /cached plan must not change result type/);
    assert.deepEqual(await read(), [{ id: 1, label: 'new' }]);
  });
});
