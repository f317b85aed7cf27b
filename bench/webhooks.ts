/**
 * `npm run bench:webhooks [-- --quick]`: webhook delivery throughput (events a second from the
 * outbox to a local receiver, through one instance's dispatcher: lease, sign, POST, record), and
 * the added cost of the outbox write on a registration (the user insert with and without its
 * user.created side write, hashing left out). On PGlite, or on BENCH_DATABASE_URL.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/core/clock.js';
import { EventRecorder } from '../src/core/events.js';
import { loadDataCipher } from '../src/crypto/data-encryption.js';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { insertUserWithPassword } from '../src/users/repository.js';
import { outboxEventWriter } from '../src/webhooks/repository.js';
import { SECRET_CONTEXT } from '../src/webhooks/sender.js';
import { newEndpointSecret } from '../src/webhooks/signing.js';
import { createServerDatabase, testConfig } from '../test/helpers/app.js';

const quick = process.argv.includes('--quick');
const EVENTS = quick ? 500 : 5000;
const INSERTS = quick ? 300 : 2000;

const server = process.env.BENCH_DATABASE_URL ? await createServerDatabase(process.env.BENCH_DATABASE_URL) : undefined;
const handle = await openDatabase({ databaseUrl: server?.url, pgliteDir: 'memory://', poolMax: 10 });
const db = handle.kysely;
await migrateToLatest(db);

let received = 0;
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    received += 1;
    res.writeHead(204).end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const config = testConfig({ webhookAllowPrivate: true });
const cipher = await loadDataCipher(db, config.dataEncryptionKeys);
await db.insertInto('webhook_endpoints').values({ url, events: '*', secret: cipher.encrypt(newEndpointSecret(), SECRET_CONTEXT) }).execute();
const events = new EventRecorder(systemClock);
events.plug(outboxEventWriter);

// 1. The added cost of the outbox write on a registration: the same insert, without and with it.
async function insertTime(withEvent: boolean, prefix: string): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < INSERTS; i++) {
    const values = { username: `${prefix}_${i}`, name: 'Bench', dob: '1990-01-01', email: `${prefix}_${i}@example.com` };
    const along = withEvent ? [events.withNewRow({ type: 'user.created', userId: null, data: { username: values.username } }, { userId: 'user_id' })] : [];
    await insertUserWithPassword(db, values, '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', along);
  }
  return ((performance.now() - started) * 1000) / INSERTS;
}
await insertTime(false, 'warm'); // planning, caches
const without = await insertTime(false, 'plain');
const withEvent = await insertTime(true, 'event');

// 2. Delivery throughput: EVENTS waiting in the outbox, one instance's dispatcher sends them all.
await db.deleteFrom('outbox').execute();
for (let i = 0; i < EVENTS; i++) await events.record(db, { type: 'user.updated', userId: String(i + 1), data: { fields: ['name'] } });
const app = await buildApp({ config, db: handle });
await app.outbox.stop(); // only the measured drain dispatches
received = 0;
const started = performance.now();
await app.outbox.drain();
const seconds = (performance.now() - started) / 1000;

const figures = {
  database: server ? 'server' : 'pglite',
  registration_insert_us: Math.round(without),
  registration_insert_with_outbox_us: Math.round(withEvent),
  outbox_write_added_us: Math.round(withEvent - without),
  events: EVENTS,
  delivered: received,
  deliveries_per_s: Math.round(received / seconds),
};
console.log(JSON.stringify(figures, null, 2));

await app.close();
receiver.close();
await handle.close();
await server?.drop();
