// Builds the account web app into dist/web: one bundled script, the stylesheet and the page.
// Run by `npm run build` (and so by `npm start`) and before the tests.
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'web');
await mkdir(join(out, 'assets'), { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  bundle: true,
  // The client package's TypeScript sources, as in the repository (no build of the package first).
  conditions: ['@user-management/source'],
  format: 'esm',
  target: ['es2022'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  outfile: join(out, 'assets', 'app.js'),
  logLevel: 'warning',
});
await copyFile(join(here, 'app.css'), join(out, 'assets', 'app.css'));
await copyFile(join(here, 'index.html'), join(out, 'index.html'));
