import type { PGlite } from '@electric-sql/pglite';

/**
 * PGlite behind the small part of the `pg` Pool interface that Kysely's PostgresDialect uses,
 * so both databases run through the same driver, compiler and SQL.
 *
 * PGlite is one connection: a transaction must own it until it ends, or another request's
 * queries would run inside it. `connect()` therefore hands out the connection to one caller
 * at a time (a FIFO mutex) and `release()` passes it on. Kysely 0.29 ships a PGlite dialect
 * doing the same; it declares Node 22, so we stay on 0.28 with this adapter (README, Decisions).
 */
export class PGlitePool {
  #queue: Array<() => void> = [];
  #busy = false;
  readonly #client: PGliteClient;

  constructor(readonly pglite: PGlite) {
    this.#client = new PGliteClient(pglite, () => this.#release());
  }

  async connect(): Promise<PGliteClient> {
    if (this.#busy) await new Promise<void>((resolve) => this.#queue.push(resolve));
    this.#busy = true;
    return this.#client;
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#busy = false;
  }

  async end(): Promise<void> {
    if (!this.pglite.closed) await this.pglite.close();
  }
}

const COMMAND = /^\s*(insert|update|delete|merge|commit|rollback)\b/i;

class PGliteClient {
  constructor(
    private readonly pglite: PGlite,
    readonly release: () => void,
  ) {}

  async query(sql: string, parameters: unknown[]): Promise<{ rows: unknown[]; rowCount: number; command: string }> {
    const result = await this.pglite.query(sql, parameters);
    return {
      rows: result.rows,
      rowCount: result.affectedRows ?? 0,
      // pg reports the statement's command tag; Kysely reads it to count affected rows.
      command: COMMAND.exec(sql)?.[1]?.toUpperCase() ?? 'SELECT',
    };
  }
}
