/**
 * Writes the HTTP reference from the service's own OpenAPI document, so it cannot drift from the
 * routes: docs/openapi.json (the document), docs/api.md (the reference a person reads) and
 * packages/client/src/api-types.ts (the client package's types, by openapi-typescript, which the
 * web app uses through the client).
 *
 *   npm run docs:api            write the three files
 *   npm run docs:api -- --check say which of them is stale, exit 1 (test/api-reference.test.ts)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/create-db.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { PROBLEMS, publicCode, type ProblemName } from '../src/errors.js';

const ROOT = join(import.meta.dirname, '..');
export const GENERATED = { openapi: 'docs/openapi.json', reference: 'docs/api.md', clientTypes: 'packages/client/src/api-types.ts' } as const;

interface Schema {
  type?: string | string[];
  $ref?: string;
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  examples?: unknown[];
  additionalProperties?: boolean | Schema;
}
interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string; schema?: Schema }>;
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; headers?: Record<string, { description?: string }>; content?: Record<string, { schema?: Schema }> }>;
}
interface OpenApiDocument {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
}

/** The document as `npm start` serves it with the default settings (PASSWORD_MIN_LENGTH 8). */
export async function openapiDocument(): Promise<OpenApiDocument> {
  const db = await openDatabase({});
  await migrateToLatest(db.kysely);
  const config = Object.freeze({
    ...loadConfig({ PUBLIC_URL: 'http://localhost:3000', DATA_DIR: 'memory://', DATA_ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64') }),
    argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 },
    outboxDir: join(tmpdir(), 'ums-api-reference-outbox'),
  });
  const app = await buildApp({ config, db });
  try {
    return JSON.parse(JSON.stringify(app.swagger())) as OpenApiDocument;
  } finally {
    await app.close();
    await db.close();
  }
}

const TAG_ORDER = ['users', 'sessions', 'account', 'mfa', 'passkeys', 'keys', 'operations'];
const TAG_TITLES: Record<string, string> = {
  users: 'Users, profile and password',
  sessions: 'Sessions and tokens',
  account: 'Account lifecycle: verification, reset, deletion, events',
  mfa: 'Authenticator app (TOTP) and recovery codes',
  passkeys: 'Passkeys (WebAuthn)',
  keys: 'Signing keys',
  operations: 'Operations',
};

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(schema: Schema | undefined): string {
  if (!schema) return 'any';
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (schema.enum) return schema.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return union.map(typeOf).join(' \\| ');
  if (schema.type === 'array') return `${typeOf(schema.items)}[]`;
  const types = Array.isArray(schema.type) ? schema.type.join(' \\| ') : (schema.type ?? 'any');
  return schema.format ? `${types} (${schema.format})` : types;
}

function rules(schema: Schema): string {
  const parts: string[] = [];
  if (schema.minLength !== undefined || schema.maxLength !== undefined) {
    parts.push(schema.minLength === undefined ? `at most ${schema.maxLength} characters` : `${schema.minLength}–${schema.maxLength ?? '∞'} characters`);
  }
  if (schema.minimum !== undefined || schema.maximum !== undefined) parts.push(`${schema.minimum ?? '−∞'} to ${schema.maximum ?? '∞'}`);
  if (schema.pattern) parts.push(`matches \`${schema.pattern}\``);
  if (schema.description) parts.push(schema.description.replace(/\.$/, ''));
  if (schema.examples?.length) parts.push(`e.g. \`${JSON.stringify(schema.examples[0])}\``);
  return parts.join('; ');
}

/** One row per field, nested objects as `parent.child`, arrays of objects as `parent[].child`. */
function fieldRows(schema: Schema | undefined, prefix = '', depth = 0): string[] {
  const object = schema?.anyOf?.find((s) => s.properties) ?? schema;
  if (!object?.properties || depth > 3) return [];
  const required = new Set(object.required ?? []);
  return Object.entries(object.properties).flatMap(([name, field]) => {
    const path = `${prefix}${name}`;
    const row = `| \`${path}\` | ${typeOf(field)} | ${required.has(name) ? 'yes' : 'no'} | ${cell(rules(field))} |`;
    const inner = field.type === 'array' ? fieldRows(field.items, `${path}[].`, depth + 1) : fieldRows(field, `${path}.`, depth + 1);
    return [row, ...inner];
  });
}

function fieldTable(schema: Schema | undefined): string[] {
  const rows = fieldRows(schema);
  if (!rows.length) return [typeOf(schema) === 'null' ? 'No content.' : `\`${typeOf(schema)}\``];
  return ['| field | type | required | rules |', '| --- | --- | --- | --- |', ...rows];
}

function renderOperation(method: string, path: string, op: Operation): string[] {
  const out = [`### \`${method.toUpperCase()} ${path}\``, '', op.summary ? `${op.summary}.` : ''];
  if (op.description) out.push('', op.description);
  out.push('', op.security?.length ? 'Needs an access token: `Authorization: Bearer <access_token>`.' : 'No access token needed.');
  const params = op.parameters ?? [];
  if (params.length) {
    out.push('', '| parameter | in | type | required | rules |', '| --- | --- | --- | --- | --- |');
    for (const p of params) out.push(`| \`${p.name}\` | ${p.in} | ${typeOf(p.schema)} | ${p.required ? 'yes' : 'no'} | ${cell(rules({ ...p.schema, description: p.description ?? p.schema?.description }))} |`);
  }
  const body = op.requestBody?.content?.['application/json']?.schema;
  if (body) out.push('', '**Body** (`application/json`):', '', ...fieldTable(body));
  const responses = Object.entries(op.responses ?? {});
  const success = responses.filter(([status]) => status.startsWith('2') || status.startsWith('3'));
  for (const [status, response] of success) {
    const schema = response.content ? Object.values(response.content)[0]?.schema : undefined;
    out.push('', `**${status}**${response.description && response.description !== 'Default Response' ? `: ${response.description}` : ''}`, '', ...fieldTable(schema));
    for (const [name, header] of Object.entries(response.headers ?? {})) out.push(`- header \`${name}\`${header.description ? `: ${header.description}` : ''}`);
  }
  const errors = responses.filter(([status]) => !(status.startsWith('2') || status.startsWith('3')));
  if (errors.length) {
    out.push('', '**Errors** (`application/problem+json`):', '');
    for (const [status, response] of errors) out.push(`- \`${status}\`: ${(response.description ?? '').split(', ').map((c) => `\`${c}\``).join(', ')}`);
  }
  return [...out, ''];
}

/** The README's settings table, so the reference has them without a second copy to keep. */
function settingsTable(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /## Configuration\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  return section.split('\n').filter((l) => l.startsWith('|'));
}

export function renderReference(doc: OpenApiDocument): string {
  const out = [
    '# HTTP reference',
    '',
    `<!-- Generated by \`npm run docs:api\` from the service's OpenAPI document (version ${doc.info.version}); do not edit by hand: test/api-reference.test.ts fails when it is stale. -->`,
    '',
    doc.info.description ?? '',
    '',
    'A running service serves the same document at `/openapi.json` and interactive docs at `/docs`; the document is also in',
    '[openapi.json](openapi.json). Bodies are JSON (`application/json`, UTF-8, at most 16 KiB); every error is',
    '`application/problem+json` (RFC 9457) with a stable `code` ([Errors](#errors)). Access tokens are JWTs (EdDSA) verified',
    'through `GET /.well-known/jwks.json`. Settings: [Settings](#settings).',
    '',
  ];
  const byTag = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = op.tags?.[0] ?? 'operations';
      byTag.set(tag, [...(byTag.get(tag) ?? []), ...renderOperation(method, path, op)]);
    }
  }
  const tags = [...byTag.keys()].sort((a, b) => (TAG_ORDER.indexOf(a) + 1 || 99) - (TAG_ORDER.indexOf(b) + 1 || 99));
  out.push('## Contents', '', ...tags.map((t) => `- [${TAG_TITLES[t] ?? t}](#${(TAG_TITLES[t] ?? t).toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')})`), '- [Errors](#errors)', '- [Settings](#settings)', '');
  for (const tag of tags) out.push(`## ${TAG_TITLES[tag] ?? tag}`, '', ...byTag.get(tag)!);
  out.push(
    '## Errors',
    '',
    'Every error answer has `type`, `title`, `status`, `code` and `detail`; a validation failure adds `errors`, a list of',
    '`{ "field", "message" }` naming every bad field (at most 20). The codes form a closed list (`src/errors.ts`):',
    '',
    '| code | status | meaning |',
    '| --- | --- | --- |',
    ...(Object.entries(PROBLEMS) as Array<[ProblemName, (typeof PROBLEMS)[ProblemName]]>)
      .filter(([name]) => publicCode(name) === name)
      .map(([name, p]) => `| \`${name}\` | ${p.status} | ${cell(p.detail)} |`),
    '',
    'A wrong `current_password` answers `403` with the code `invalid_credentials`.',
    '',
    '## Settings',
    '',
    'All settings come from the environment (the same table as the README\'s "Configuration").',
    '',
    ...settingsTable(),
    '',
  );
  return out.join('\n').replace(/\n{3,}/g, '\n\n');
}

/** The client package's types (and so the web app's): code that no longer matches a route fails its type check. */
export async function clientTypes(doc: OpenApiDocument): Promise<string> {
  const ast = await openapiTS(doc as never);
  return `/**\n * Generated by \`npm run docs:api\` (openapi-typescript) from the service's OpenAPI document\n * (docs/openapi.json). Do not edit by hand: test/api-reference.test.ts fails when it is stale.\n */\n\n${astToString(ast)}`;
}

/** The generated files as they should be now. */
export async function generate(): Promise<Record<keyof typeof GENERATED, string>> {
  const doc = await openapiDocument();
  return { openapi: `${JSON.stringify(doc, null, 2)}\n`, reference: renderReference(doc), clientTypes: await clientTypes(doc) };
}

/** The generated files that differ from what is on disk. */
export async function staleFiles(): Promise<string[]> {
  const fresh = await generate();
  return (Object.keys(GENERATED) as Array<keyof typeof GENERATED>).filter((key) => {
    try {
      return readFileSync(join(ROOT, GENERATED[key]), 'utf8') !== fresh[key];
    } catch {
      return true;
    }
  }).map((key) => GENERATED[key]);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  if (process.argv.includes('--check')) {
    const stale = await staleFiles();
    if (stale.length) {
      console.error(`Stale: ${stale.join(', ')}. Run: npm run docs:api`);
      process.exit(1);
    }
    console.log('The HTTP reference is current.');
  } else {
    const fresh = await generate();
    for (const key of Object.keys(GENERATED) as Array<keyof typeof GENERATED>) writeFileSync(join(ROOT, GENERATED[key]), fresh[key]);
    console.log(`Wrote ${Object.values(GENERATED).join(', ')}.`);
  }
}
