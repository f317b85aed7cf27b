import { MysqlAdapter, sql, type ColumnDefinitionBuilder, type CreateTableBuilder, type Expression, type Kysely, type RawBuilder } from 'kysely';

/**
 * What the schema looks like per dialect: the one place the migrations ask "PostgreSQL or
 * MySQL/MariaDB?". The PostgreSQL answers are exactly what the migrations said before MySQL
 * came (they are frozen: a database migrated by them must stay the same).
 *
 * MySQL/MariaDB choices (docs/databases.md says why):
 * - every table `utf8mb4` with the binary collation `utf8mb4_bin`: comparisons and unique keys
 *   respect case and accents, as PostgreSQL text does; the case-insensitive keys are the
 *   generated lower-cased columns (username_key, email_key), compared binary too;
 * - timestamps `datetime(3)`, written and read in UTC (the session time zone is +00:00);
 * - ids `bigint auto_increment`;
 * - a text column that is part of a key is a `varchar(n)` (MySQL cannot index `text` whole).
 */

/** True when `db` talks to MySQL or MariaDB (Kysely's MysqlDialect). */
export function isMysql(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof MysqlAdapter;
}

type DataType = Parameters<CreateTableBuilder<any, any>['addColumn']>[1];
type Column = (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;

export interface SchemaDialect {
  readonly mysql: boolean;
  /** A point in time: timestamptz, or datetime(3) in UTC. */
  readonly timestamp: DataType;
  /** The current time, as a column default. */
  readonly now: RawBuilder<unknown>;
  /** Free text (never part of a key). */
  readonly text: DataType;
  /** Text that is part of a key or an index: text on PostgreSQL, varchar(n) on MySQL. */
  keyText(length: number): DataType;
  /** ASCII text that is part of a key (base64url ids): varchar(n) in ascii_bin on MySQL (1 byte a character). */
  asciiKey(length: number): DataType;
  /** A stored column the database computes from others (MariaDB refuses NOT NULL on it: its source is not null). */
  generated(expression: Expression<unknown>): Column;
  /** A bigint primary key the database numbers. */
  readonly identity: Column;
  /** Table options: utf8mb4 with a binary collation on MySQL, nothing on PostgreSQL. */
  table<T extends CreateTableBuilder<any, any>>(builder: T): T;
}

const postgres: SchemaDialect = {
  mysql: false,
  timestamp: 'timestamptz',
  now: sql`now()`,
  text: 'text',
  keyText: () => 'text',
  asciiKey: (length) => `varchar(${length})`,
  generated: (expression) => (c) => c.notNull().generatedAlwaysAs(expression).stored(),
  identity: (c) => c.primaryKey().generatedAlwaysAsIdentity(),
  table: (builder) => builder,
};

const mysql: SchemaDialect = {
  mysql: true,
  timestamp: 'datetime(3)',
  now: sql`current_timestamp(3)`,
  text: 'text',
  keyText: (length) => `varchar(${length})`,
  asciiKey: (length) => sql`varchar(${sql.raw(String(length))}) character set ascii collate ascii_bin` as Expression<unknown> as DataType,
  generated: (expression) => (c) => c.generatedAlwaysAs(expression).stored(),
  identity: (c) => c.primaryKey().autoIncrement(),
  table: (builder) => builder.modifyEnd(sql`engine = InnoDB default character set utf8mb4 collate utf8mb4_bin`) as typeof builder,
};

export function schemaDialect(db: Kysely<any>): SchemaDialect {
  return isMysql(db) ? mysql : postgres;
}

/**
 * The database's current time, for SET clauses: now() on PostgreSQL; current_timestamp(3) on
 * MySQL, whose now() drops the milliseconds.
 */
export function dbNow(db: Kysely<any>): RawBuilder<Date> {
  return isMysql(db) ? sql<Date>`current_timestamp(3)` : sql<Date>`now()`;
}

/** The database's time `seconds` ago (see dbNow), for comparisons made on the database's own clock. */
export function dbSecondsAgo(db: Kysely<any>, seconds: number): RawBuilder<Date> {
  return isMysql(db) ? sql<Date>`current_timestamp(3) - interval ${seconds} second` : sql<Date>`now() - make_interval(secs => ${seconds})`;
}
