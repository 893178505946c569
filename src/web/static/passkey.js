// Portcullis passkeys: WebAuthn ceremonies for the login, second-factor,
// enrolment and account pages. The page marks its card with
// data-passkey="login|second_factor|enrol|account" and data-csrf; every call
// is a JSON POST to our own origin, answered with the options for
// navigator.credentials, then {"location": ...} or {"error": ...}.
'use strict';

(() => {
  const root = document.querySelector('[data-passkey]');
  if (!root || !window.PublicKeyCredential) return;
  const mode = root.dataset.passkey;
  const csrf = root.dataset.csrf;
  const request = root.dataset.request;
  const errorBox = document.getElementById('passkey-error');
  // The page's language: its messages are data attributes of #passkey-messages
  // (base.html), with English as the fallback.
  const texts = (document.getElementById('passkey-messages') || {}).dataset || {};
  const msg = (key, english) => texts[key] || english;

  const b64u = {
    decode(s) {
      const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
      return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
    },
    encode(buf) {
      let s = '';
      for (const x of new Uint8Array(buf)) s += String.fromCharCode(x);
      return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    },
  };

  function showError(text) {
    if (!errorBox) return;
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  async function call(path, extra) {
    const body = { csrf, ...extra };
    if (request) body.request = request;
    const r = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return r.json();
  }

  function creationOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64u.decode(pk.challenge);
    pk.user.id = b64u.decode(pk.user.id);
    for (const c of pk.excludeCredentials || []) c.id = b64u.decode(c.id);
    return { publicKey: pk };
  }

  function requestOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64u.decode(pk.challenge);
    for (const c of pk.allowCredentials || []) c.id = b64u.decode(c.id);
    return { publicKey: pk };
  }

  function registration(cred) {
    return {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: b64u.encode(cred.response.attestationObject),
        clientDataJSON: b64u.encode(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : undefined,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function assertion(cred) {
    return {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: b64u.encode(cred.response.authenticatorData),
        clientDataJSON: b64u.encode(cred.response.clientDataJSON),
        signature: b64u.encode(cred.response.signature),
        userHandle: cred.response.userHandle ? b64u.encode(cred.response.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  // Recovery codes issued with a first passkey: shown once, then on.
  function showCodes(codes, location) {
    const box = document.createElement('section');
    box.setAttribute('role', 'status');
    const h = document.createElement('h2');
    h.textContent = msg('recoveryTitle', 'Your recovery codes');
    const p = document.createElement('p');
    p.textContent = msg('recoveryHelp', 'If you lose your passkey, each of these codes lets you in once. Keep them somewhere safe: they are shown only now.');
    const list = document.createElement('ul');
    list.id = 'recovery-codes';
    for (const c of codes) {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = c;
      li.appendChild(code);
      list.appendChild(li);
    }
    const go = document.createElement('a');
    go.className = 'button';
    go.id = 'recovery-continue';
    go.href = location;
    go.textContent = msg('recoveryContinue', 'I have saved them — continue');
    box.append(h, p, list, go);
    root.replaceChildren(box);
  }

  function follow(answer, failure) {
    if (answer && answer.location && Array.isArray(answer.recovery_codes)) {
      showCodes(answer.recovery_codes, answer.location);
    } else if (answer && answer.location) {
      window.location.assign(answer.location);
    } else {
      showError((answer && answer.error) || failure);
    }
  }

  // Sign-in (passwordless or second factor). `conditional`: offered in the
  // username field's autofill instead of a dialog.
  let pending = null;
  async function signIn(base, conditional) {
    if (pending) pending.abort();
    const ctl = new AbortController();
    pending = ctl;
    let options;
    try {
      options = await call(`${base}/start`, {});
    } catch (_) {
      if (!conditional) showError(msg('loginFailed', 'Login failed'));
      return;
    }
    if (!options.publicKey) {
      if (!conditional) showError(options.error || msg('loginFailed', 'Login failed'));
      return;
    }
    const get = requestOptions(options);
    get.signal = ctl.signal;
    if (conditional) get.mediation = 'conditional';
    let cred;
    try {
      cred = await navigator.credentials.get(get);
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      showError(msg('loginFailed', 'Login failed'));
      return;
    }
    if (pending === ctl) pending = null;
    follow(await call(`${base}/finish`, { credential: assertion(cred) }), msg('loginFailed', 'Login failed'));
  }

  async function register(base) {
    const nameInput = document.getElementById('passkey-name');
    const name = nameInput ? nameInput.value : '';
    const options = await call(`${base}/start`, {});
    if (!options.publicKey) {
      showError(options.error || msg('addFailed', 'The passkey could not be added.'));
      return;
    }
    let cred;
    try {
      cred = await navigator.credentials.create(creationOptions(options));
    } catch (_) {
      showError(msg('addRetry', 'The passkey could not be added. Try again.'));
      return;
    }
    follow(await call(`${base}/finish`, { name, credential: registration(cred) }), msg('addFailed', 'The passkey could not be added.'));
  }

  function on(id, fn) {
    const el = document.getElementById(id);
    if (el) el.addEventListener('click', (e) => { e.preventDefault(); fn(); });
  }

  if (mode === 'login') {
    on('passkey-signin', () => signIn('/login/passkey', false));
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((yes) => {
        if (yes) signIn('/login/passkey', true);
      });
    }
  } else if (mode === 'second_factor') {
    on('passkey-verify', () => signIn('/login/mfa/passkey', false));
  } else if (mode === 'enrol') {
    on('passkey-add', () => register('/login/enrol/passkey'));
  } else if (mode === 'account') {
    on('passkey-add', () => register('/account/passkeys'));
  }
})();
