import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { serverUrl, startTestService, testConfig, type TestService } from './helpers/app.js';

/**
 * Instances behind one address must sign for one issuer and audience (docs/scaling.md): one that
 * starts beside another signing for another says so in its log. PGlite is one process: only one
 * instance can open its database, so there is nothing to warn of there.
 */
describe('instances on one database', { skip: serverUrl ? false : 'PGlite is opened by one process only: set TEST_DATABASE_URL to a PostgreSQL or MariaDB server' }, () => {
  let first: TestService;
  before(async () => {
    first = await startTestService({}, { PUBLIC_URL: 'http://localhost:3001' });
    await first.app.ready();
  });
  after(() => first?.close());

  async function startAnother(env: Record<string, string>): Promise<string[]> {
    const lines: string[] = [];
    const app = await buildApp({ config: testConfig({}, env), db: first.handle, logger: { level: 'warn', stream: { write: (line: string) => lines.push(line) } } });
    await app.ready();
    await app.close();
    return lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
  }

  it('when an instance starts beside one with another PUBLIC_URL, then its log warns, naming the other issuer and the settings to align', async () => {
    const messages = await startAnother({ PUBLIC_URL: 'http://localhost:3002' });
    const warning = messages.find((m) => m.includes('another issuer'));
    assert.ok(warning, messages.join('\n'));
    assert.match(warning, /http:\/\/localhost:3001/);
    assert.match(warning, /this one signs for http:\/\/localhost:3002/);
    assert.match(warning, /PUBLIC_URL/);
  });

  it('when an instance starts beside one with the same PUBLIC_URL, then its log has no such warning', async () => {
    const messages = await startAnother({ PUBLIC_URL: 'http://localhost:3001' });
    assert.deepEqual(messages.filter((m) => m.includes('another issuer')), []);
  });

  it('when the same PUBLIC_URL but another JWT_AUDIENCE, then its log warns too, naming that audience', async () => {
    const messages = await startAnother({ PUBLIC_URL: 'http://localhost:3001', JWT_AUDIENCE: 'https://api.example.com' });
    const warning = messages.find((m) => m.includes('another issuer'));
    assert.ok(warning, messages.join('\n'));
    assert.match(warning, /this one signs for http:\/\/localhost:3001 \(audience https:\/\/api\.example\.com\)/);
  });
});
