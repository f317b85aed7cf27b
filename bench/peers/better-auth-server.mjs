// Better Auth as a benchmark peer: email + password, PostgreSQL via `pg`,
// rate limiting off, served by node:http on 127.0.0.1:PORT.
//
//   PORT=4100 DATABASE_URL=postgres://postgres@127.0.0.1:5432/peer_x \
//     node bench/peers/better-auth-server.mjs
//
// DATABASE_URL must name an existing (normally fresh, empty) database; the
// caller creates and drops it. Better Auth's own migrations create its tables
// (user, session, account, verification) on start.
//
// stdout: exactly one line once ready:
//   better-auth listening on http://127.0.0.1:PORT password-hash=scrypt
// Anything else (Better Auth's own warnings/errors) goes to stderr.
// SIGTERM / SIGINT: close the server and the pool, exit 0.

import http from "node:http";
import pg from "pg";
import { betterAuth } from "better-auth";
import { toNodeHandler } from "better-auth/node";
import { getMigrations } from "better-auth/db/migration";

const PORT = Number.parseInt(process.env.PORT ?? "", 10);
const DATABASE_URL = process.env.DATABASE_URL;
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) {
  process.stderr.write("better-auth-server: set PORT to a TCP port number\n");
  process.exit(2);
}
if (!DATABASE_URL) {
  process.stderr.write("better-auth-server: set DATABASE_URL to a postgres:// URL\n");
  process.exit(2);
}

// Fixed bench secret (>= 32 chars, high entropy so Better Auth does not warn).
const SECRET =
  process.env.BETTER_AUTH_SECRET ?? "bench-only-7f3c9a1e5b2d8f4a6c0e9b7d3f1a5c8e2b4d6f0a";
// Same default as the service's own pool (src/db/create-db.ts: poolMax ?? 10).
const POOL_MAX = Number.parseInt(process.env.PG_POOL_MAX ?? "10", 10);
const BASE_URL = `http://127.0.0.1:${PORT}`;

// Better Auth hashes passwords with node:crypto scrypt (N=16384, r=16, p=1,
// dkLen=64, 16-byte salt), run on libuv's thread pool. See README.md.
const PASSWORD_HASH = "scrypt";

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: POOL_MAX });
pool.on("error", (err) => {
  process.stderr.write(`better-auth-server: idle pg client error: ${err.message}\n`);
});

const auth = betterAuth({
  baseURL: BASE_URL,
  // The baseURL's origin is trusted anyway; localhost too, for callers that use it.
  trustedOrigins: [BASE_URL, `http://localhost:${PORT}`],
  secret: SECRET,
  database: pool,
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  // Better Auth's logger writes info/debug to stdout; keep stdout to the one
  // ready line by only letting warnings and errors through (they go to stderr;
  // every failed sign-in logs one WARN line). BETTER_AUTH_LOG_LEVEL=error
  // silences those.
  logger: { level: process.env.BETTER_AUTH_LOG_LEVEL ?? "warn" },
});

async function main() {
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();

  const server = http.createServer(toNodeHandler(auth));
  server.keepAliveTimeout = 65_000;

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => {
      pool.end().finally(() => process.exit(0));
    });
    server.closeAllConnections?.();
    // Never hang the caller: exit 0 anyway after 3 s.
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(PORT, "127.0.0.1", resolve);
  });
  process.stdout.write(`better-auth listening on ${BASE_URL} password-hash=${PASSWORD_HASH}\n`);
}

main().catch((err) => {
  process.stderr.write(`better-auth-server: failed to start: ${err?.stack ?? err}\n`);
  pool.end().catch(() => {}).finally(() => process.exit(1));
});
