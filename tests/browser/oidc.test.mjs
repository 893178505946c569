// A person signs in to a sample application: the application's page links to
// Portcullis (authorization code + PKCE), the person logs in there, and lands
// back on the application, greeted by name from the ID token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './lib.mjs';

test('sign in to a sample app through Portcullis', { timeout: 60_000 }, async () => {
  const app = process.env.CLIENT_URL;
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(app);
    await Promise.all([page.waitForNavigation(), page.click('#signin')]);
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.match(await page.locator('main').innerText(), /Sample app/);
    await page.fill('input[autocomplete="username"]', process.env.PC_USER);
    await page.fill('input[autocomplete="current-password"]', process.env.PC_PASSWORD);
    await Promise.all([page.waitForURL(`${app}/callback**`), page.click('button[type="submit"]')]);
    assert.equal(await page.locator('#greeting').innerText(), `Signed in as ${process.env.PC_USER}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
