/**
 * `npx tsx bench/poll-cost.ts [instances] [seconds]`: what the revocation polling costs on
 * MySQL/MariaDB (docs/databases.md). Opens `instances` pollers on one fresh database (as that many
 * service instances would), lets them poll for `seconds` with no revocations, and reports per
 * instance and per second: polls, client CPU, and the MariaDB server's CPU (from /proc, so run it
 * on a quiet machine with the server local). Then the same with up to 100 revocations a second
 * (written one at a time, so a slow server writes fewer; the line says how many were sent).
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { notifyInvalidated } from '../src/db/notifications.js';
import { createServerDatabase } from '../test/helpers/app.js';

const instances = Number(process.argv[2] ?? 10);
const seconds = Number(process.argv[3] ?? 10);
const base = process.env.BENCH_MYSQL_URL || 'mysql://root@127.0.0.1:3306/mysql';

function serverCpuMs(): number {
  const pid = execFileSync('pgrep', ['-o', '-x', 'mariadbd'], { encoding: 'utf8' }).trim();
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in ticks of 10 ms
}

const database = await createServerDatabase(base);
const dbs = [];
try {
  const writer = await openDatabase({ databaseUrl: database.url });
  await migrateToLatest(writer.kysely);
  let messages = 0;
  const listeners = [];
  for (let i = 0; i < instances; i++) {
    const db = await openDatabase({ databaseUrl: database.url, poolMax: 1 });
    dbs.push(db);
    listeners.push(await db.listen('ums_invalidate', { onMessage: () => messages++, onReset: () => {} }));
  }
  for (const revocationsPerS of [0, 100]) {
    messages = 0;
    const cpu0 = process.cpuUsage();
    const server0 = serverCpuMs();
    const start = Date.now();
    let sent = 0;
    while (Date.now() - start < seconds * 1000) {
      for (let k = 0; k < revocationsPerS / 10; k++) await notifyInvalidated(writer.kysely, 'session', [String(++sent)]);
      await new Promise((r) => setTimeout(r, 100));
    }
    const elapsedS = (Date.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const server = serverCpuMs() - server0;
    const healthy = listeners.every((l) => l.healthy);
    console.log(
      `${instances} instances, ${revocationsPerS} revocations/s, ${elapsedS.toFixed(1)} s: ` +
        `client CPU ${((cpu.user + cpu.system) / 1000 / elapsedS / instances).toFixed(2)} ms per instance per second, ` +
        `server CPU ${(server / elapsedS / instances).toFixed(2)} ms per instance per second, ` +
        `${(messages / elapsedS / instances).toFixed(1)} messages read per instance per second (sent ${sent}), all healthy: ${healthy}`,
    );
  }
  for (const l of listeners) await l.close();
  await writer.close();
} finally {
  for (const db of dbs) await db.close();
  await database.drop();
}
