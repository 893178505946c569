// Enrol TOTP from the account page by reading #totp-secret (as a person would
// type it into an authenticator app), then log in with password + code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, totp } from './lib.mjs';

const base = process.env.BASE_URL;
const user = process.env.PC_USER;
const password = process.env.PC_PASSWORD;
const shots = process.env.SCREENSHOT_DIR;

test('enrol TOTP, log out, log in with password and code', { timeout: 60_000 }, async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    await page.goto(`${base}/login`);
    await page.fill('input[autocomplete="username"]', user);
    await page.fill('input[autocomplete="current-password"]', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/account');

    await page.goto(`${base}/account/mfa`);
    assert.equal(await page.locator('.qr svg').count(), 1, 'an inline SVG QR code');
    const secret = (await page.locator('#totp-secret').innerText()).trim();
    if (shots) await page.screenshot({ path: `${shots}/enrol.png`, fullPage: true });
    await page.fill('input[autocomplete="one-time-code"]', totp(secret));
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(await page.locator('#recovery-codes li').count(), 10);

    await page.goto(`${base}/logout`);
    await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login');

    await page.fill('input[autocomplete="username"]', user);
    await page.fill('input[autocomplete="current-password"]', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login/mfa');
    // The enrolment spent this step's code: the next step's is valid now too (±1 step).
    await page.fill('input[autocomplete="one-time-code"]', totp(secret, 1));
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/account');
    assert.match(await page.locator('main').innerText(), /Recovery codes left/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
