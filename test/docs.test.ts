import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The docs say what the code is: when a layout, a named test, a link or a figure no longer
 * matches, a test fails and says what to change (issue #24: docs had drifted silently).
 */

const read = (path: string) => readFileSync(path, 'utf8');
const MARKDOWN = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Folders of the repository that are not part of the code a newcomer reads. */
const NOT_LAID_OUT = new Set(['node_modules', 'dist', 'data', 'coverage']);

interface LayoutEntry {
  name: string;
  /** The entry's text, continuation lines included. */
  text: string;
}

/** The README's "How the code is laid out" block: top-level entries, and the entries under src/. */
function readmeLayout(): { top: LayoutEntry[]; src: LayoutEntry[] } {
  const block = /## How the code is laid out\n+```\n([\s\S]*?)```/.exec(read('README.md'))?.[1];
  assert.ok(block, 'README.md has a "How the code is laid out" section with a code block');
  const top: LayoutEntry[] = [];
  const src: LayoutEntry[] = [];
  let last: LayoutEntry | undefined;
  let inSrc = false;
  for (const line of block.split('\n')) {
    const entry = /^( {0,2})(\S+)/.exec(line);
    if (!entry) {
      if (last) last.text += ` ${line.trim()}`;
      continue;
    }
    last = { name: entry[2]!, text: line.trim() };
    if (entry[1] === '') {
      inSrc = last.name === 'src/';
      top.push(last);
    } else if (inSrc) src.push(last);
    else assert.fail(`README.md layout: "${line.trim()}" is indented but not under src/`);
  }
  return { top, src };
}

const entriesOf = (dir: string) =>
  readdirSync(dir)
    .filter((name) => !name.startsWith('.') && !NOT_LAID_OUT.has(name))
    .map((name) => (statSync(join(dir, name)).isDirectory() ? `${name}/` : name));

describe('the docs match the code', () => {
  it('when src/ gains or loses a file or folder, then the README\'s code layout names exactly what is there', () => {
    const { src } = readmeLayout();
    const named = src.map((e) => e.name);
    const present = entriesOf('src');
    const missing = present.filter((name) => !named.includes(name));
    const gone = named.filter((name) => !present.includes(name));
    assert.deepEqual(
      missing,
      [],
      `README.md, "How the code is laid out": src/ has ${missing.join(', ')}, which the layout does not name. Add a line under src/ for each, e.g.\n` +
        missing.map((name) => `  ${name.padEnd(19)}<what it holds>`).join('\n'),
    );
    assert.deepEqual(gone, [], `README.md, "How the code is laid out" names ${gone.map((n) => `src/${n}`).join(', ')}, which no longer exist: remove or rename the lines.`);
  });

  it('when a top-level folder or a page under docs/ is added or removed, then the README\'s code layout names exactly what is there', () => {
    const { top } = readmeLayout();
    const folders = entriesOf('.').filter((name) => name.endsWith('/'));
    const named = top.map((e) => e.name);
    const missing = folders.filter((name) => !named.includes(name));
    const gone = named.filter((name) => !existsSync(name));
    assert.deepEqual(missing, [], `README.md, "How the code is laid out": add a top-level line for ${missing.join(', ')} (what it holds).`);
    assert.deepEqual(gone, [], `README.md, "How the code is laid out" names ${gone.join(', ')}, which no longer exist.`);
    const docsLine = top.find((e) => e.name === 'docs/')!;
    const pages = readdirSync('docs').filter((f) => /\.(md|json)$/.test(f));
    const unnamed = pages.filter((page) => !docsLine.text.includes(page));
    assert.deepEqual(unnamed, [], `README.md, "How the code is laid out": the docs/ line does not name ${unnamed.join(', ')}.`);
  });

  it('when a doc names a test (`test/file.test.ts` › `name`), then that test exists under that exact name', () => {
    const stale: string[] = [];
    for (const doc of MARKDOWN) {
      for (const [, file, name] of read(doc).matchAll(/`(test\/[\w/.-]+\.test\.ts)` › `([^`]+)`/g)) {
        // Test names are written in single-quoted strings: \' in the source is ' in the name.
        if (!existsSync(file!) || !read(file!).replaceAll("\\'", "'").includes(name!)) stale.push(`${doc}: ${file} › ${name}`);
      }
    }
    assert.deepEqual(stale, [], 'rename these in the doc to the test\'s present name (or point at the test that now shows the rule)');
  });

  it('when a doc links to a file of the repository, then the file exists', () => {
    const broken: string[] = [];
    for (const doc of MARKDOWN) {
      for (const [, target] of read(doc).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        if (!existsSync(join(dirname(doc), target!))) broken.push(`${doc} → ${target}`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('when docs/scaling.md sizes an instance, then each figure it gives is one docs/performance.md reports', () => {
    const performance = read('docs/performance.md');
    const sizing = /## Sizing\n([\s\S]*?)\n## /.exec(read('docs/scaling.md'))?.[1] ?? '';
    // Measured figures: requests a second, rates (257/s) and p99 latencies; derived ones (÷, ≈) are the reader's sums.
    const figures = [...sizing.matchAll(/\b(\d[\d,]*(?:\.\d+)?)( req\/s|\/s|(?<=p99 \d+) ms)/g)].map((m) => `${m[1]}${m[2]}`);
    assert.ok(figures.length >= 4, `docs/scaling.md's sizing gives its figures (found ${figures.join(', ')})`);
    const unreported = figures.filter((figure) => !performance.includes(figure));
    assert.deepEqual(unreported, [], 'docs/scaling.md quotes figures docs/performance.md does not report: take them from performance.md\'s latest run');
  });
});
