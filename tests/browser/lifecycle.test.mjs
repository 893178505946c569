// Account lifecycle in headless Chromium: a person opens the invitation an
// administrator mailed, chooses a password, is made to enrol a passkey at
// their first sign-in (their role requires one) on the way to a sample app,
// lands there signed in; later forgets the password, asks for a reset link
// on the login page, follows the mail, sets a new password, and signs in
// with it and the passkey (the reset kept the second factor).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './lib.mjs';

const base = process.env.BASE_URL;
const user = process.env.PC_USER;
const app = process.env.PC_APP_URL;
const invitation = process.env.PC_INVITATION;
const mailDir = process.env.PC_MAIL_DIR;
const shots = process.env.SCREENSHOT_DIR;

// The newest link to `path` in the mail received so far (raw messages, the
// text part quoted-printable or plain).
function linkInMail(path) {
  const files = readdirSync(mailDir).filter((f) => f.endsWith('.eml'))
    .map((f) => join(mailDir, f)).sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  for (const f of files.reverse()) {
    const text = readFileSync(f, 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '=');
    const m = text.match(new RegExp(`${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${path}\\?token=[A-Za-z0-9_-]+`));
    if (m) return m[0];
  }
  return null;
}

async function waitForMail(path) {
  for (let i = 0; i < 100; i++) {
    const link = linkInMail(path);
    if (link) return link;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail with a ${path} link`);
}

test('invitation, passkey at first sign-in, app sign-in, forgotten password', { timeout: 120_000 }, async () => {
  const browser = await launch();
  try {
    const context = await browser.newContext();
    // No autofill sign-in here: every step is clicked.
    await context.addInitScript(() => {
      if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });
    const page = await context.newPage();
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    });

    // The invitation: choose a password.
    await page.goto(invitation);
    assert.equal(await page.inputValue('input[autocomplete="username"]'), user);
    if (shots) await page.screenshot({ path: `${shots}/invitation.png` });
    await page.fill('input[autocomplete="new-password"]', 'first chosen passphrase');
    await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.match(await page.locator('[role="status"]').innerText(), /account is active/);

    // The first sign-in, for a sample app: the role requires a passkey.
    await page.goto(app);
    await Promise.all([page.waitForNavigation(), page.click('#signin')]);
    await page.fill('#username', user);
    await page.fill('#password', 'first chosen passphrase');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login/enrol');
    await page.fill('#passkey-name', 'Laptop');
    await page.click('#passkey-add');
    // A first factor besides the password comes with recovery codes.
    await page.waitForSelector('#recovery-codes');
    // Registration proves nothing about holding the key: it is used at once.
    await Promise.all([page.waitForURL(`${base}/login/mfa`), page.click('#recovery-continue')]);
    await Promise.all([page.waitForURL(/\/callback/), page.click('#passkey-verify')]);
    await page.waitForSelector('#greeting');
    assert.equal(await page.locator('#greeting').innerText(), `Signed in as ${user}`);

    // Forgotten: ask for a reset link on the login page.
    // (The same tab: the virtual authenticator belongs to it.)
    const fresh = page;
    await fresh.goto(`${base}/logout`);
    await Promise.all([fresh.waitForNavigation(), fresh.click('main button[type="submit"]')]);
    await fresh.goto(`${base}/login`);
    await Promise.all([fresh.waitForNavigation(), fresh.click('a[href="/forgot"]')]);
    await fresh.fill('#who', user);
    if (shots) await fresh.screenshot({ path: `${shots}/forgot.png` });
    await Promise.all([fresh.waitForNavigation(), fresh.click('main button[type="submit"]')]);
    assert.match(await fresh.locator('main').innerText(), /Check your mail/);
    const reset = await waitForMail('/password/reset');
    await fresh.goto(reset);
    await fresh.fill('input[autocomplete="new-password"]', 'second chosen passphrase');
    await Promise.all([fresh.waitForNavigation(), fresh.click('main button[type="submit"]')]);
    assert.match(await fresh.locator('[role="status"]').innerText(), /password was changed/);

    // The new password, then the passkey: the reset did not remove it.
    await fresh.fill('#username', user);
    await fresh.fill('#password', 'second chosen passphrase');
    await Promise.all([fresh.waitForNavigation(), fresh.click('main form button[type="submit"]')]);
    assert.equal(new URL(fresh.url()).pathname, '/login/mfa');
    await Promise.all([fresh.waitForURL(`${base}/account`), fresh.click('#passkey-verify')]);
    // The link was used: it opens no form any more.
    await fresh.goto(reset);
    assert.match(await fresh.locator('main').innerText(), /no longer works/);
    assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await browser.close();
  }
});
