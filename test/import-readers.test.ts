import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { readRecords, type Format } from '../src/import/readers/index.js';
import type { RawRecord } from '../src/import/records.js';

/** The readers on their own: the same records whatever the chunks a stream happens to cut. */

const FIREBASE = { signerKey: 'c2lnbmVy', saltSeparator: 'Bw==', rounds: 8, memCost: 14 };

async function read(format: Format, chunks: Iterable<Buffer>): Promise<RawRecord[]> {
  const out: RawRecord[] = [];
  for await (const r of readRecords(format, chunks, { firebase: FIREBASE })) out.push(r);
  return out;
}

function* cut(bytes: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const samples: Array<[string, Format]> = [
  ['users.ndjson', 'ndjson'],
  ['users.csv', 'csv'],
  ['auth0-passwords.ndjson', 'auth0'],
  ['supabase-users.csv', 'supabase'],
  ['keycloak-realm.json', 'keycloak'],
  ['firebase-users.json', 'firebase'],
  ['better-auth.csv', 'better-auth'],
];

describe('import readers', () => {
  for (const [file, format] of samples) {
    it(`when ${file} arrives in chunks of 1, 2, 3 and 7 bytes, then ${format} reads the same records as from one chunk`, async () => {
      const bytes = readFileSync(`test/fixtures/import/${file}`);
      const whole = await read(format, [bytes]);
      assert.ok(whole.length >= 2 && whole.every((r) => r.fields && !r.errors), JSON.stringify(whole).slice(0, 300));
      for (const size of [1, 2, 3, 7]) assert.deepEqual(await read(format, cut(bytes, size)), whole, `chunks of ${size}`);
    });
  }

  it('when text has multi-byte characters, quotes, escapes and nested arrays cut anywhere, then every reader keeps them whole', async () => {
    const name = 'Zoë "the \\ Ünïcødé" 山田 🙂';
    const json = Buffer.from(JSON.stringify({ realm: 'r', users: [{ email: 'a@example.com', firstName: name, realmRoles: ['x', ['nested']], credentials: [] }], after: { users: [1] } }));
    const csv = Buffer.from(`name,email\r\n"${name.replace(/"/g, '""')}, with ""quotes""\r\nand a line",b@example.com\r\n`);
    for (const size of [1, 2, 5]) {
      const kc = await read('keycloak', cut(json, size));
      assert.equal(kc.length, 1);
      assert.equal(kc[0]!.fields!.name, name);
      const rows = await read('csv', cut(csv, size));
      assert.deepEqual(rows, [{ line: 2, fields: { name: `${name}, with "quotes"\r\nand a line`, email: 'b@example.com' } }]);
    }
  });

  it('when a JSON export has no users array, a record that is not an object, or ends early, then each is said with its position', async () => {
    assert.deepEqual(await read('firebase', [Buffer.from('{"accounts": []}')]), [{ line: 0, errors: [{ field: null, message: 'the file has no "users" array' }] }]);
    const items = await read('firebase', [Buffer.from('{"users": [{"email": "a@example.com"}, 42, "x", {"email": "b@example.com"}, {"email": ')]);
    assert.deepEqual(items.map((i) => [i.line, i.errors?.[0]?.message ?? 'ok']), [[1, 'ok'], [2, 'the record is not a JSON object'], [3, 'the record is not a JSON object'], [4, 'ok'], [5, 'the record ends in the middle of the document']]);
  });

  it('when a line is longer than a record can be, then it is refused by its number and the next line still reads', async () => {
    const text = `${JSON.stringify({ email: 'a@example.com' })}\n"${'x'.repeat(1024 * 1024 + 10)}"\n${JSON.stringify({ email: 'b@example.com' })}\n`;
    const records = await read('ndjson', cut(Buffer.from(text), 65536));
    assert.deepEqual(records.map((r) => [r.line, r.errors?.[0]?.message ?? 'ok']), [[1, 'ok'], [2, 'the line is too long'], [3, 'ok']]);
  });
});
