// Accessibility: every page a person or an administrator sees, checked by
// axe-core (WCAG 2.0/2.1/2.2 A and AA rules) in light and in dark mode, with
// zero violations; and a login done with the keyboard alone (Tab, typing,
// Enter), password then TOTP code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { launch, totp } from './lib.mjs';

const require = createRequire(import.meta.url);
const axePath = require.resolve('axe-core/axe.min.js');
const base = process.env.BASE_URL;
const user = process.env.PC_USER;
const password = process.env.PC_PASSWORD;
const seed = process.env.PC_SEED;
const target = process.env.PC_TARGET;
const client = process.env.PC_CLIENT;
const consent = process.env.PC_CONSENT;

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

async function violations(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } }),
    TAGS,
  );
  return result.violations.map((v) => ({
    rule: v.id,
    impact: v.impact,
    nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
  }));
}

// Presses Tab until the element matching `selector` has the focus.
async function tabTo(page, selector, max = 15) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return;
  }
  throw new Error(`${selector} never got the keyboard focus`);
}

test('every page passes axe in light and dark mode; login works by keyboard', { timeout: 120_000 }, async () => {
  const browser = await launch();
  try {
    const found = [];
    for (const scheme of ['light', 'dark']) {
      // bypassCSP: only so that axe's script can be injected into our pages.
      const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1100, height: 900 }, bypassCSP: true });
      const page = await context.newPage();
      const check = async (label) => {
        for (const v of await violations(page)) found.push({ scheme, page: label, ...v });
      };

      await page.goto(`${base}/login`);
      // Forgot password, sign-up and a provider's button are on it.
      assert.equal(await page.locator('a[href="/login/upstream/corp"]').count(), 1);
      await check('/login');
      // The German pages (lang="de", longer words) too; then back to English.
      await page.goto(`${base}/login?ui_locales=de`);
      assert.equal(await page.getAttribute('html', 'lang'), 'de');
      await check('/login (German)');
      await context.clearCookies();
      await page.goto(`${base}/no-such-page`, { waitUntil: 'load' });
      await check('404 page');
      // The account lifecycle's pages, reached without signing in.
      for (const p of ['/forgot', '/signup', process.env.PC_INVITATION, process.env.PC_VERIFY, '/password/reset?token=dead']) {
        await page.goto(p.startsWith('http') ? p : `${base}${p}`);
        await check(p.split('?')[0].replace(base, ''));
      }

      // Keyboard only: Tab to each field, type, Enter.
      await page.goto(`${base}/login`);
      await tabTo(page, '#username');
      await page.keyboard.type(user);
      await tabTo(page, '#password', 3);
      await page.keyboard.type(password);
      await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
      assert.equal(new URL(page.url()).pathname, '/login/mfa');
      await check('/login/mfa');
      await tabTo(page, '#code');
      await page.keyboard.type(totp(seed, scheme === 'light' ? 0 : 1));
      await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
      assert.equal(new URL(page.url()).pathname, '/account', `keyboard login (${scheme})`);
      assert.equal(await page.locator('#upstream form').count(), 1, 'the linking form of the provider');
      await check('/account');

      const pages = [
        '/account/mfa',
        '/admin/users',
        `/admin/users/${target}`,
        '/admin/clients',
        `/admin/clients/${client}`,
        '/admin/roles',
        '/admin/audit',
        '/admin/reauth?next=/admin/users',
        '/logout',
      ];
      for (const p of pages) {
        await page.goto(`${base}${p}`);
        await check(p);
      }
      await page.goto(`${base}${consent}`);
      assert.equal(new URL(page.url()).pathname, '/consent');
      await check('/consent');
      // Log in again for the next colour scheme's keyboard login.
      await page.goto(`${base}/logout`);
      await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
      await context.close();
    }
    assert.deepEqual(found, [], JSON.stringify(found, null, 2));
  } finally {
    await browser.close();
  }
});
