// openid-client 6 (a certified relying-party library) drives the FAPI 2.0
// flow against the real provider: discovery, a pushed authorization request
// authenticated with private_key_jwt and carrying a DPoP proof, a login (by
// plain HTTP, as a browser would post the form), the code exchange with PKCE
// and DPoP, UserInfo with the DPoP-bound token, and a refresh. DPoP nonces
// are the library's to handle (it retries once on use_dpop_nonce).
// Prints one JSON line with what it saw; exits non-zero on any failure.
import * as client from 'openid-client';
import { webcrypto } from 'node:crypto';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const issuer = env('ISSUER');
const clientId = env('CLIENT_ID');
const redirectUri = env('REDIRECT_URI');

const clientKey = await webcrypto.subtle.importKey(
  'pkcs8',
  Buffer.from(env('CLIENT_KEY_PKCS8'), 'base64'),
  { name: 'ECDSA', namedCurve: 'P-256' },
  false,
  ['sign'],
);
const config = await client.discovery(
  new URL(issuer),
  clientId,
  { id_token_signed_response_alg: 'ES256' },
  client.PrivateKeyJwt({ key: clientKey, kid: env('CLIENT_KID') }),
  { execute: [client.allowInsecureRequests] },
);
const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));

const verifier = client.randomPKCECodeVerifier();
const authUrl = await client.buildAuthorizationUrlWithPAR(
  config,
  {
    redirect_uri: redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  },
  { DPoP: dpop },
);
if (![...authUrl.searchParams.keys()].every((k) => k === 'client_id' || k === 'request_uri')) {
  throw new Error(`the authorization URL carries more than client_id and request_uri: ${authUrl}`);
}

// The user's browser: follows redirects by hand, keeping cookies.
const jar = new Map();
const browse = async (url, init = {}) => {
  const headers = { ...(init.headers ?? {}), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
  const r = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const c of r.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return r;
};
const field = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!m) throw new Error(`no ${name} field in the page`);
  return m[1];
};
let r = await browse(authUrl);
let next = new URL(r.headers.get('location'), issuer);
r = await browse(next);
const page = await r.text();
r = await browse(new URL('/login', issuer), {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    csrf: field(page, 'csrf'),
    request: field(page, 'request'),
    username: env('PC_USER'),
    password: env('PC_PASSWORD'),
  }),
});
let callback;
for (let i = 0; i < 5 && !callback; i++) {
  const to = new URL(r.headers.get('location') ?? '', issuer);
  if (to.href.startsWith(redirectUri)) callback = to;
  else r = await browse(to);
}
if (!callback) throw new Error(`no redirect back to the client (last status ${r.status})`);

const tokens = await client.authorizationCodeGrant(
  config,
  callback,
  { pkceCodeVerifier: verifier, idTokenExpected: true },
  undefined,
  { DPoP: dpop },
);
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP: dpop });
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop });
// The refreshed token at UserInfo as a plain bearer token: must be refused.
const asBearer = await fetch(new URL('/userinfo', issuer), {
  headers: { authorization: `Bearer ${refreshed.access_token}` },
});
console.log(JSON.stringify({
  token_type: tokens.token_type,
  access_token: tokens.access_token,
  id_token_sub: claims.sub,
  userinfo_sub: userinfo.sub,
  userinfo_username: userinfo.preferred_username,
  refreshed_token_type: refreshed.token_type,
  refreshed_access_token: refreshed.access_token,
  bearer_status: asBearer.status,
}));
