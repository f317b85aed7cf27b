import { availableParallelism } from 'node:os';

/**
 * Password hashing runs on libuv's thread pool, which libuv sizes on its first use (4 threads
 * unless UV_THREADPOOL_SIZE says otherwise). One thread per core hashes fastest: more only make
 * the hashes take turns, and leave less of the machine to everything else. Imported first by the
 * entry points, before anything touches the pool; UV_THREADPOOL_SIZE set in the environment wins.
 */
process.env.UV_THREADPOOL_SIZE ??= String(availableParallelism());
