/**
 * Sizes libuv's thread pool, where password hashing runs: one thread per core across the
 * workers. More only make the hashes take turns and leave less of the machine to everything
 * else; libuv's default is 4 per process. libuv reads UV_THREADPOOL_SIZE on the pool's first use,
 * which in an ES module program comes while its modules are still loading, so this runs before
 * them, preloaded as CommonJS: `node --require ./dist/src/thread-pool.cjs …` (the start script).
 * UV_THREADPOOL_SIZE set in the environment wins.
 */
import os = require('node:os');

const cores = os.availableParallelism();
// As in config.ts: WORKERS defaults to the cores on a server database, to 1 on the embedded one.
const workers = Number(process.env.WORKERS) || (process.env.DATABASE_URL ? cores : 1);
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(1, Math.ceil(cores / workers)));
