import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Config } from '../../src/config.js';
import { startTestService, type TestService } from './app.js';
import { freePort } from './processes.js';

/** Debian's Chromium (`apt-get install chromium`); .ci/run installs it when missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const skipWithoutChromium = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

/**
 * Where screenshots go: docs/screenshots when SCREENSHOTS=docs/screenshots (to refresh the
 * README's pictures), a scratch folder otherwise so a test run leaves the tree clean.
 */
export async function screenshotDir(): Promise<string> {
  const dir = process.env.SCREENSHOTS ?? join(process.env.TMPDIR ?? '/tmp', 'ums-screenshots');
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * The service listening on a real port, reached as http://localhost:<port> (a host name, as
 * WebAuthn wants), and a headless Chromium to drive it.
 */
export async function startBrowserSession(
  env: Record<string, string> = {},
  overrides: Partial<Config> = {},
  /** A port chosen beforehand (a provider registered the callback URL on it); a free one otherwise. */
  chosenPort?: number,
): Promise<{ svc: TestService; origin: string; browser: Browser; close(): Promise<void> }> {
  const port = chosenPort ?? (await freePort());
  const origin = `http://localhost:${port}`;
  const svc = await startTestService(overrides, { PUBLIC_URL: origin, ...env });
  await svc.app.listen({ port, host: '127.0.0.1' });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Without these, Chromium keeps trying hosts this closed network refuses.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    svc,
    origin,
    browser,
    close: async () => {
      await browser.close();
      await svc.close();
    },
  };
}

/** Waits until the page's main heading says `title` (the app moved there and rendered). */
export async function expectHeading(page: Page, title: string): Promise<void> {
  await page.getByRole('heading', { level: 1, name: title }).waitFor({ timeout: 15_000 });
}
