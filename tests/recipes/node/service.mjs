// A Node service that trusts Portcullis access tokens, verified with `jose`.
//
//   ISSUER=https://id.example.com AUDIENCE=https://api.example.com PORT=9001 node service.mjs
//
// GET /me: any valid access token; GET /billing: one carrying the `billing`
// role. Refusals follow RFC 6750 §3 and say why, like portcullis-verify.
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify, errors } from 'jose';

const issuer = process.env.ISSUER;
const audience = process.env.AUDIENCE;

// Discovery once at start; the key set is fetched and cached by jose, and
// refetched when a token names a key it has not seen (rotation).
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
if (discovery.issuer !== issuer) throw new Error(`discovery names another issuer: ${discovery.issuer}`);
const keys = createRemoteJWKSet(new URL(discovery.jwks_uri), { cooldownDuration: 10_000 });
// Only asymmetric algorithms the provider advertises: never `none`, never HMAC.
const algorithms = discovery.id_token_signing_alg_values_supported.filter((a) =>
  ['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256'].includes(a),
);

async function verify(token) {
  const { payload } = await jwtVerify(token, keys, {
    issuer,
    audience,
    algorithms,
    typ: 'at+jwt', // RFC 9068 §4: an access token, not an ID token
    requiredClaims: ['exp', 'sub'],
    clockTolerance: 30,
  });
  return payload;
}

function why(e) {
  if (e instanceof errors.JWTExpired) return 'the token has expired';
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'aud') return 'the token is not for this service';
    if (e.claim === 'iss') return 'the token was issued by another issuer';
    if (e.claim === 'typ') return 'the token is not an access token (typ at+jwt)';
    if (e.claim === 'nbf') return 'the token is not yet valid';
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (e instanceof errors.JWKSNoMatchingKey) return 'the token is signed with an unknown key';
  if (e instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not accepted";
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) return 'the token is malformed';
  return 'the token is invalid';
}

function answer(res, status, body, challenge) {
  const headers = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };
  if (challenge) headers['WWW-Authenticate'] = challenge;
  res.writeHead(status, headers).end(JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
  if (!bearer) return answer(res, 401, { error: 'invalid_token', error_description: 'a bearer token is required' }, 'Bearer');
  let claims;
  try {
    claims = await verify(bearer[1]);
  } catch (e) {
    // The provider could not be asked for its keys: retry, do not re-authenticate.
    if (e instanceof errors.JWKSTimeout || e instanceof TypeError) {
      console.error(`cannot verify a bearer token: the provider is unreachable (${e.message})`);
      return answer(res, 503, { error: 'temporarily_unavailable', error_description: 'the identity provider cannot be reached' });
    }
    const description = why(e);
    console.error(`bearer token refused: ${description} (${e.code ?? e.name})`);
    return answer(res, 401, { error: 'invalid_token', error_description: description },
      `Bearer error="invalid_token", error_description="${description}"`);
  }
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  if (req.url === '/billing' && !roles.includes('billing')) {
    const description = 'the token lacks a role this resource requires';
    return answer(res, 403, { error: 'insufficient_scope', error_description: description },
      `Bearer error="insufficient_scope", error_description="${description}"`);
  }
  answer(res, 200, { sub: claims.sub, roles });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
