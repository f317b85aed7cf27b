import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { staleFiles } from '../scripts/api-reference.js';

/** The HTTP reference and the client's types (the web app's too) are the OpenAPI document of the code as it is. */
describe('the HTTP reference', () => {
  it('when a route, schema, error code or setting changes, then docs/api.md, docs/openapi.json and packages/client/src/api-types.ts are written again (npm run docs:api)', { timeout: 120_000 }, async () => {
    assert.deepEqual(await staleFiles(), [], 'stale: run `npm run docs:api` and commit what it writes');
  });
});
