// A person connects a TV (RFC 8628) in a real browser while the TV polls:
// the TV asks for codes, polls at its interval; the person opens the
// verification URI, signs in (the page comes back after the login), sees
// the code and the application, and approves; the TV's next poll gets
// tokens. Run by the Rust test `browser::…`, which starts Portcullis,
// registers the public client `tv` and passes BASE_URL, PC_USER, PC_PASSWORD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './lib.mjs';

const base = process.env.BASE_URL;
const grant = 'urn:ietf:params:oauth:grant-type:device_code';

const post = async (path, form) => {
  const r = await fetch(`${base}${path}`, { method: 'POST', body: new URLSearchParams(form) });
  return { status: r.status, body: await r.json() };
};

test('approve a device code while the device polls', { timeout: 90_000 }, async () => {
  const start = await post('/device_authorization', { client_id: 'tv', scope: 'openid profile' });
  assert.equal(start.status, 200);
  const { device_code, user_code, verification_uri_complete, interval } = start.body;

  // The TV polls in the background, keeping its interval (and slowing down if told).
  const answers = [];
  const polling = (async () => {
    let wait = interval;
    for (let i = 0; i < 20; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, wait * 1000));
      const a = await post('/token', { grant_type: grant, client_id: 'tv', device_code });
      answers.push(a.status === 200 ? 'tokens' : a.body.error);
      if (a.status === 200) return a.body;
      if (a.body.error === 'slow_down') wait += 5;
      else if (a.body.error !== 'authorization_pending') throw new Error(`poll: ${a.body.error}`);
    }
    throw new Error('no tokens after 20 polls');
  })();

  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(verification_uri_complete);
    assert.equal(new URL(page.url()).pathname, '/login', 'signing in first');
    await page.fill('input[autocomplete="username"]', process.env.PC_USER);
    await page.fill('input[autocomplete="current-password"]', process.env.PC_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/device', 'back on the device page after the login');
    const text = await page.locator('main').innerText();
    assert.match(text, /Living-room TV/);
    assert.ok(text.includes(user_code), 'the code to compare is shown');
    await Promise.all([page.waitForNavigation(), page.click('button[name="decision"][value="approve"]')]);
    assert.match(await page.locator('main').innerText(), /Done/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
  const tokens = await polling;
  assert.equal(tokens.token_type, 'Bearer');
  assert.ok(tokens.access_token && tokens.refresh_token && tokens.id_token);
  assert.ok(answers.includes('authorization_pending'), `the device polled before the approval: ${answers}`);
});
