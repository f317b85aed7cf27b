// Runs before `npm start` (npm's prestart): checks the settings first, so a typo stops the start
// in a second rather than after the build; then builds only what changed since the last build,
// saying what it does. `npm start` then runs the build it left in dist/.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => console.log(line);

/** The newest modification time under these paths (files and folders, recursively). */
function newest(paths) {
  let latest = 0;
  const walk = (path) => {
    if (!existsSync(path)) return;
    const stat = statSync(path);
    latest = Math.max(latest, stat.mtimeMs);
    if (stat.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  for (const path of paths) walk(join(root, path));
  return latest;
}
const mtime = (file) => (existsSync(join(root, file)) ? statSync(join(root, file)).mtimeMs : 0);
// An incremental build rewrites only what changed: a stamp says when the last one finished.
const SERVER_STAMP = 'dist/.server-built';
const builtAt = () => Math.max(mtime(SERVER_STAMP), mtime('dist/src/server.js'));

function run(command, args) {
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
  return ((Date.now() - started) / 1000).toFixed(0);
}

// 1. The settings, as the server reads them: one line naming a bad one, exit 1.
say('Checking the settings…');
try {
  const { tsImport } = await import('tsx/esm/api');
  const { loadConfig, ConfigError } = await tsImport('../src/config.ts', import.meta.url);
  try {
    loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`Configuration error: ${err.message}`);
    process.exit(1);
  }
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  say('  (tsx is not installed: the server checks them when it starts)');
}

// 2. The server: compiled only when src/ or the TypeScript settings changed since the last build.
const serverSources = newest(['src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']);
if (serverSources > builtAt()) {
  say(mtime('dist/src/server.js') ? 'Compiling the server (src/ changed since the last build)…' : 'Compiling the server (the first build takes a while)…');
  const seconds = run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--incremental']);
  writeFileSync(join(root, SERVER_STAMP), '');
  say(`  compiled in ${seconds} s`);
} else {
  say('The server is built and up to date.');
}

// 3. The web app: bundled only when web/ (or the client package it bundles) changed.
if (newest(['web', 'packages/client/src']) > mtime('dist/web/assets/app.js')) {
  say('Bundling the web app…');
  const seconds = run(process.execPath, [join(root, 'web', 'build.mjs')]);
  say(`  bundled in ${seconds} s`);
} else {
  say('The web app is built and up to date.');
}
say('Starting…');
