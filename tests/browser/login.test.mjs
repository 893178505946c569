// A person at a real browser: log in (after one wrong password), see the
// account page, log out. Run by the Rust test `browser::…`, which starts
// Portcullis and passes BASE_URL, PC_USER and PC_PASSWORD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './lib.mjs';

const base = process.env.BASE_URL;
const user = process.env.PC_USER;
const password = process.env.PC_PASSWORD;
const shots = process.env.SCREENSHOT_DIR; // set to refresh docs/ screenshots

test('log in, fail once, succeed, log out', { timeout: 60_000 }, async () => {
  assert.ok(base && user && password, 'BASE_URL, PC_USER and PC_PASSWORD are required');
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 720 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    await page.goto(`${base}/login`);
    assert.equal(await page.locator('input[autocomplete="username"]').count(), 1);
    assert.equal(await page.locator('input[autocomplete="current-password"]').count(), 1);
    if (shots) await page.screenshot({ path: `${shots}/login.png` });

    // A wrong password: the generic message, nothing else.
    await page.fill('input[autocomplete="username"]', user);
    await page.fill('input[autocomplete="current-password"]', 'not the password');
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(await page.locator('.alert').innerText(), 'Login failed');

    // The right one lands on the account page.
    await page.fill('input[autocomplete="username"]', user);
    await page.fill('input[autocomplete="current-password"]', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/account');
    assert.match(await page.locator('main').innerText(), new RegExp(user));
    if (shots) await page.screenshot({ path: `${shots}/account.png`, fullPage: true });

    // Log out from the header button.
    await Promise.all([page.waitForNavigation(), page.click('nav button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.match(await page.locator('.notice').innerText(), /logged out/);
    await page.goto(`${base}/account`);
    assert.equal(new URL(page.url()).pathname, '/login', 'the session is gone');

    // No CSP violations or script errors on any page.
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
