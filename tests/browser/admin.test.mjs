// An administrator logs in with password and TOTP code, opens the admin pages
// from the account page, searches the user list and disables a user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, totp } from './lib.mjs';

const base = process.env.BASE_URL;
const user = process.env.PC_USER;
const password = process.env.PC_PASSWORD;
const seed = process.env.PC_SEED;
const shots = process.env.SCREENSHOT_DIR;

test('an administrator manages users from the admin pages', { timeout: 60_000 }, async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    await page.goto(`${base}/login`);
    await page.fill('input[autocomplete="username"]', user);
    await page.fill('input[autocomplete="current-password"]', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login/mfa');
    await page.fill('input[autocomplete="one-time-code"]', totp(seed));
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/account');

    await Promise.all([page.waitForNavigation(), page.click('a[href="/admin/users"]')]);
    assert.equal(new URL(page.url()).pathname, '/admin/users');
    assert.ok((await page.locator('tbody tr').count()) >= 5, 'the user list');
    if (shots) await page.screenshot({ path: `${shots}/admin-users.png`, fullPage: true });

    await page.fill('input[type="search"]', 'mall');
    await Promise.all([page.waitForNavigation(), page.click('form[role="search"] button')]);
    assert.equal(await page.locator('tbody tr').count(), 1, 'one match for "mall"');
    await Promise.all([page.waitForNavigation(), page.click('tbody a')]);
    assert.match(await page.locator('h1').innerText(), /mallory/);

    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Disable account")')]);
    assert.match(await page.locator('[role="status"]').innerText(), /disabled/);
    assert.equal(await page.locator('button:has-text("Enable account")').count(), 1);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
