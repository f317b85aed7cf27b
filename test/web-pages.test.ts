import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WEB_CSP, WEB_PAGES } from '../src/http/web-app.js';
import { PROBLEM_TYPE, problem, startTestService, type TestService } from './helpers/app.js';

/** How the service serves the built web app (npm test builds it first). */
describe('web app pages', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(() => svc.close());

  it('when any page of the web app is asked for, then 200 HTML with the strict Content-Security-Policy and no referrer', async () => {
    assert.match(WEB_CSP, /default-src 'none'/);
    assert.match(WEB_CSP, /script-src 'self'(;|$)/);
    assert.match(WEB_CSP, /base-uri 'none'/);
    assert.match(WEB_CSP, /frame-ancestors 'none'/);
    for (const url of WEB_PAGES) {
      const res = await svc.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8', url);
      assert.equal(res.headers['content-security-policy'], WEB_CSP, url);
      assert.equal(res.headers['referrer-policy'], 'no-referrer', url);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
      assert.match(res.body, /<script type="module" src="\/assets\/app.js"><\/script>/, url);
      // PUBLIC_URL is named (not fetched): the one address where passkeys work.
      assert.match(res.body, /<meta name="public-url" content="http:\/\/localhost:3000">/, url);
      assert.doesNotMatch(res.body.replace(/<meta name="public-url"[^>]*>/, ''), /<script>|\son\w+=|https?:\/\//, `${url}: no inline script, no outside address`);
    }
  });

  it('when the script and stylesheet are asked for, then each with its type; anything else under /assets, or a path trick, is 404 problem+json', async () => {
    const js = await svc.app.inject({ method: 'GET', url: '/assets/app.js' });
    assert.equal(js.statusCode, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    const css = await svc.app.inject({ method: 'GET', url: '/assets/app.css' });
    assert.equal(css.statusCode, 200);
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    for (const url of ['/assets/index.html', '/assets/..%2F..%2Fpackage.json', '/assets/__proto__', '/assets/app.js.map', '/sign-in/extra']) {
      const res = await svc.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.headers['content-type'], PROBLEM_TYPE, url);
      assert.equal(problem(res).code, 'not_found', url);
    }
  });
});
