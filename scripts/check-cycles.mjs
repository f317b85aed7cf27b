#!/usr/bin/env node
// The import graph of src/ between folders, from madge (type imports counted: a type import ties
// two folders' code together as much as a value import does when either changes).
// Usage: node scripts/check-cycles.mjs [--mermaid] [--values-only] [dir]
//   --mermaid      print the folder graph as a mermaid flowchart (docs/architecture.md)
//   --values-only  leave type-only imports out (to compare with a count that skips them)
// Fails (exit 1) on any cycle between folders of src/, or between files.
import { resolve } from 'node:path';
import madge from 'madge';

const args = process.argv.slice(2);
const mermaid = args.includes('--mermaid');
const skipTypeImports = args.includes('--values-only');
const root = resolve(args.find((a) => !a.startsWith('--')) ?? '.');

const result = await madge(resolve(root, 'src'), {
  baseDir: root,
  fileExtensions: ['ts', 'cts'],
  tsConfig: resolve(root, 'tsconfig.json'),
  detectiveOptions: { ts: { skipTypeImports }, es6: { skipTypeImports } },
});
const files = result.obj();

/** A file's folder under src/; a file at the top of src/ is a node of its own (app, config, errors...). */
const nodeOf = (file) => {
  const parts = file.replace(/^src\//, '').split('/');
  return parts.length > 1 ? `${parts[0]}/` : parts[0].replace(/\.c?ts$/, '');
};

const edges = new Map();
for (const [from, tos] of Object.entries(files)) {
  const a = nodeOf(from);
  if (!edges.has(a)) edges.set(a, new Set());
  for (const to of tos) {
    const b = nodeOf(to);
    if (a !== b) edges.get(a).add(b);
  }
}

// Tarjan's strongly connected components: a component of two or more folders is a cycle.
function components(graph) {
  let index = 0;
  const stack = [];
  const info = new Map();
  const out = [];
  const visit = (v) => {
    info.set(v, { index, low: index, on: true });
    index++;
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!info.has(w)) {
        visit(w);
        info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
      } else if (info.get(w).on) info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
    }
    if (info.get(v).low === info.get(v).index) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        info.get(w).on = false;
        c.push(w);
      } while (w !== v);
      out.push(c.sort());
    }
  };
  for (const v of graph.keys()) if (!info.has(v)) visit(v);
  return out;
}

if (mermaid) {
  // The entry files import every feature and every file imports errors/config: left out, the
  // graph shows how the folders lean on each other.
  const hidden = new Set(['app', 'dependencies', 'server', 'cli', 'errors', 'config', 'resources', 'thread-pool', 'thread-priority', 'idle-collection']);
  const id = (n) => n.replace(/[^A-Za-z0-9]/g, '');
  console.log('graph TD');
  const shown = [...edges.keys()].filter((n) => !hidden.has(n)).sort();
  for (const n of shown) console.log(`  ${id(n)}["${n}"]`);
  for (const a of shown) {
    const to = [...edges.get(a)].filter((b) => !hidden.has(b)).sort();
    if (to.length) console.log(`  ${id(a)} --> ${to.map(id).join(' & ')}`);
  }
  process.exit(0);
}

const folderCycles = components(edges).filter((c) => c.length > 1);
const fileCycles = result.circular();
console.log(`import cycles: ${folderCycles.length} between folders (${folderCycles.reduce((n, c) => n + c.length, 0)} folders in them), ${fileCycles.length} between files`);
for (const c of folderCycles) console.log(`  folders: ${c.join(' ')}`);
for (const c of fileCycles) console.log(`  files: ${c.join(' -> ')}`);
if (folderCycles.length > 0 || fileCycles.length > 0) process.exit(1);
