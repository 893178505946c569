// Passkeys in headless Chromium with its virtual authenticator (DevTools
// WebAuthn domain: CTAP2, resident keys, user verification): enrol on
// /account, sign in without a password (button, then browser autofill), use
// the passkey after the password, sign in to a sample app whose ID token
// must say acr=phr, and fail cleanly once the passkey is removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './lib.mjs';

const base = process.env.BASE_URL;
const user = process.env.PC_USER;
const password = process.env.PC_PASSWORD;
const app = process.env.PC_APP_URL;
const shots = process.env.SCREENSHOT_DIR;

async function logOut(page) {
  await page.goto(`${base}/logout`);
  await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
  assert.equal(new URL(page.url()).pathname, '/login');
}

test('passkeys: enrol, passwordless, autofill, second factor, acr=phr, removal', { timeout: 120_000 }, async () => {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
    // Chromium's virtual authenticator answers a pending autofill
    // (conditional) request by itself; the steps that test something else
    // turn autofill off through the tab's name.
    await context.addInitScript(() => {
      if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) return;
      const available = PublicKeyCredential.isConditionalMediationAvailable.bind(PublicKeyCredential);
      PublicKeyCredential.isConditionalMediationAvailable = async () => window.name !== 'noautofill' && available();
    });
    const page = await context.newPage();
    const autofill = (on) => page.evaluate((v) => { window.name = v ? '' : 'noautofill'; }, on);
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    });

    // Password sign-in, then add a passkey on the account page.
    await page.goto(`${base}/login`);
    await autofill(false);
    await page.reload();
    assert.equal(await page.getAttribute('#username', 'autocomplete'), 'username webauthn');
    await page.fill('#username', user);
    await page.fill('#password', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/account');
    await page.fill('#passkey-name', 'Laptop');
    // Its first passkey gives a password-only account recovery codes, shown
    // once before going on (a lost key must not lock the person out).
    await page.click('#passkey-add');
    await page.waitForSelector('#recovery-codes');
    assert.equal(await page.locator('#recovery-codes li').count(), 10);
    assert.match(await page.locator('#recovery-codes').innerText(), /^[a-z2-7]{5}(-[a-z2-7]{5}){4}/);
    await Promise.all([page.waitForURL(/m=passkey_added/), page.click('#recovery-continue')]);
    assert.match(await page.locator('#passkeys').innerText(), /Laptop/);
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential');
    if (shots) await page.screenshot({ path: `${shots}/passkeys.png`, fullPage: true });

    // Passwordless, with the button.
    await logOut(page);
    await Promise.all([page.waitForURL(`${base}/account`), page.click('#passkey-signin')]);

    // Passwordless through autofill (conditional mediation): the virtual
    // authenticator answers the pending conditional request by itself.
    await logOut(page);
    await autofill(true);
    await page.goto(`${base}/login`);
    // No click and no typing: the saved passkey offered in the username
    // field's autofill signs in.
    await page.waitForURL(`${base}/account`, { timeout: 15_000 });
    await autofill(false);

    // The passkey as the second factor, after the password.
    await logOut(page);
    await page.goto(`${base}/login`);
    await page.fill('#username', user);
    await page.fill('#password', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login/mfa');
    await Promise.all([page.waitForURL(`${base}/account`), page.click('#passkey-verify')]);

    // A sample app asks for acr=phr: the ID token must say so.
    await logOut(page);
    await page.goto(app);
    await Promise.all([page.waitForNavigation(), page.click('#signin')]);
    assert.equal(new URL(page.url()).pathname, '/login');
    // (A cross-site navigation clears the tab's name, so autofill may sign in
    // before the click lands: either way it is this passkey.)
    page.click('#passkey-signin', { timeout: 3_000 }).catch(() => {});
    await page.waitForURL(/\/callback/, { waitUntil: 'commit', timeout: 30_000 });
    await page.waitForSelector('#greeting');
    assert.match(await page.locator('#greeting').innerText(), new RegExp(`Signed in as ${user} \\(acr phr\\)`));

    // Remove the passkey (needs the password); the authenticator still holds
    // it, and a sign-in with it fails cleanly.
    await page.goto(`${base}/account`);
    await autofill(false);
    await page.fill('#passkeys input[name="current_password"]', password);
    await Promise.all([page.waitForURL(/m=passkey_removed/), page.click('#passkeys button.danger')]);
    await logOut(page);
    await page.click('#passkey-signin');
    await page.waitForSelector('#passkey-error:not([hidden])');
    assert.equal((await page.locator('#passkey-error').innerText()).trim(), 'Login failed');
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await browser.close();
  }
});
