import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { AppError } from '../errors.js';
import type { Config } from '../config.js';
import type { App, Feature } from './types.js';

/** The pages of the account web app (web/): each answers the same document, the script routes. */
export const WEB_PAGES = ['/', '/sign-in', '/sign-up', '/profile', '/password', '/sessions', '/security', '/forgot-password', '/reset-password', '/verify-email', '/admin', '/admin/users', '/admin/roles', '/complete-sign-up', '/authorize-app', '/connected-apps', '/orgs', '/orgs/view', '/accept-invitation'];

/**
 * Strict for the pages: our own script and stylesheet only, no inline code, no outside request
 * (ASVS 5.0 V3.4.3). `data:` images are the QR codes of TOTP set-up.
 */
export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** dist/web, built by `npm run build` (web/build.mjs); from src/ (tsx) or dist/src/ (node) alike. */
function builtWebDir(): string | undefined {
  const base = fileURLToPath(new URL('../../', import.meta.url));
  return [join(base, 'dist', 'web'), join(base, 'web')].find((dir) => existsSync(join(dir, 'assets', 'app.js')));
}

/** The page names PUBLIC_URL, the one address where passkeys work, so the script can say so elsewhere. */
function withPublicUrl(index: string, publicUrl: string): Buffer {
  const escaped = publicUrl.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return Buffer.from(index.replace('<meta name="public-url" content="">', `<meta name="public-url" content="${escaped}">`));
}

/**
 * Serves the built web app from memory: three small files, read once at start, so a page costs
 * no disk read and nothing outside dist/web can ever be served.
 */
/** The account web app's pages and assets. */
export const webAppFeature: Feature<{ config: Config }> = async (app, { config }) => webAppRoutes(app, config.publicUrl);

export function webAppRoutes(app: App, publicUrl: string): void {
  const dir = builtWebDir();
  const files = dir
    ? { index: withPublicUrl(readFileSync(join(dir, 'index.html'), 'utf8'), publicUrl), assets: new Map(Object.keys(ASSETS).map((name) => [name, readFileSync(join(dir, 'assets', name))])) }
    : undefined;
  if (!files) app.log.warn('the web app is not built (npm run build): its pages answer 404');

  for (const path of WEB_PAGES) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) => {
      if (!files) throw new AppError('not_found', { detail: 'The web app is not built: run `npm run build`.' });
      return reply
        .header('content-security-policy', WEB_CSP)
        .header('referrer-policy', 'no-referrer')
        .header('cross-origin-opener-policy', 'same-origin')
        .type('text/html; charset=utf-8')
        .send(files.index);
    });
  }
  app.get<{ Params: { name: string } }>('/assets/:name', { schema: { hide: true } }, async (request, reply) => {
    const body = files?.assets.get(request.params.name);
    if (!body) throw new AppError('not_found');
    return reply.type(ASSETS[request.params.name]!).send(body);
  });
}
