import pg from 'pg';

/**
 * A `pg` client that sends each distinct statement text as a named prepared statement, so the
 * server parses and plans it once per connection instead of on every call. Kysely sends every
 * query as `client.query(text, values)`, and our statements are few and fixed, so this is where
 * the saving is made for all of them: about a third of PostgreSQL's CPU per login and refresh in
 * `npm run bench`.
 *
 * Names are shared by every connection of the process (one text, one name) and capped; texts
 * past the cap run unnamed, as before. A statement whose result columns changed under it (a
 * migration by a newer instance) is refused with "cached plan must not change result type"; its
 * text then gets a new name, prepared afresh: at once, when the statement ran on its own; inside
 * a transaction (which the refusal has ended) by the transaction's next attempt.
 */
export class PreparingClient extends pg.Client {
  /** The server's transaction status after the last statement: I (none), T (in one), E (failed one). */
  #transactionStatus = 'I';

  constructor(config?: string | pg.ClientConfig) {
    super(config);
    (this as unknown as { connection: NodeJS.EventEmitter }).connection.on('readyForQuery', (message: { status: string }) => {
      this.#transactionStatus = message.status;
    });
  }

  // pg's query() has many overloads: this handles the one Kysely uses and passes the rest on.
  override query(...args: any[]): any {
    const [text, values] = args;
    if (args.length !== 2 || typeof text !== 'string' || !Array.isArray(values)) return super.query(...(args as [string]));
    const name = values.length <= MAX_NAMED_PARAMETERS && text.length <= MAX_NAMED_TEXT ? statementName(text) : undefined;
    if (name === undefined) return super.query(text, values);
    return super.query({ name, text, values }).catch((error: unknown) => {
      if (!isStalePlan(error)) throw error;
      statementNames.delete(text);
      if (this.#transactionStatus !== 'I') throw error;
      return this.query(text, values);
    });
  }
}

const MAX_NAMED_STATEMENTS = 1000;
/**
 * Statements whose text grows with their input (a batch insert of N rows, an IN list of N ids)
 * would each take a name for every size; past these they run unnamed. The fixed statements of
 * the request paths are well under both.
 */
const MAX_NAMED_PARAMETERS = 64;
const MAX_NAMED_TEXT = 8192;
const statementNames = new Map<string, string>();
let nextName = 0;

function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) statementNames.set(text, (name = `k${nextName++}`));
  return name;
}

/** PostgreSQL's answer when a prepared statement's result type changed since it was prepared. */
function isStalePlan(error: unknown): boolean {
  return (error as { code?: string }).code === '0A000' && /cached plan must not change result type/.test(String((error as Error).message));
}
