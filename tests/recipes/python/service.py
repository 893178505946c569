"""A Python service that trusts Portcullis access tokens, verified with PyJWT.

    ISSUER=https://id.example.com AUDIENCE=https://api.example.com PORT=9002 python3 service.py

GET /me: any valid access token; GET /billing: one carrying the `billing`
role. Refusals follow RFC 6750 §3 and say why, like portcullis-verify.
"""

import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import urlopen

import jwt

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]

with urlopen(f"{ISSUER}/.well-known/openid-configuration", timeout=10) as r:
    DISCOVERY = json.load(r)
if DISCOVERY["issuer"] != ISSUER:
    raise SystemExit(f"discovery names another issuer: {DISCOVERY['issuer']}")
# Keys cached for five minutes and refetched for an unknown kid (rotation) at
# most once per 10 s (PyJWT's cooldown), so made-up kids cannot make this
# service hammer the provider.
KEYS = jwt.PyJWKClient(DISCOVERY["jwks_uri"], cache_jwk_set=True, lifespan=300, timeout=10, cooldown_duration=10)


class Unavailable(Exception):
    pass
# Only asymmetric algorithms the provider advertises: never `none`, never HMAC.
ALGORITHMS = [
    a for a in DISCOVERY["id_token_signing_alg_values_supported"] if a in ("ES256", "ES384", "EdDSA", "RS256", "PS256")
]


class Refused(Exception):
    pass


def verify(token: str) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise Refused("the token is malformed")
    # RFC 9068 §4: an access token, not an ID token.
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise Refused("the token is not an access token (typ at+jwt)")
    if header.get("alg") not in ALGORITHMS:
        raise Refused("the token's algorithm is not accepted")
    try:
        key = KEYS.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as e:
        raise Unavailable(str(e))
    except jwt.PyJWKClientError:
        raise Refused("the token is signed with an unknown key")
    if key.algorithm_name != header["alg"]:
        raise Refused("the token's algorithm is not accepted")
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=30,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Refused("the token has expired")
    except jwt.ImmatureSignatureError:
        raise Refused("the token is not yet valid")
    except jwt.InvalidAudienceError:
        raise Refused("the token is not for this service")
    except jwt.InvalidIssuerError:
        raise Refused("the token was issued by another issuer")
    except jwt.InvalidSignatureError:
        raise Refused("the token's signature does not verify")
    except jwt.InvalidTokenError:
        raise Refused("the token is invalid")


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body, challenge=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            return self.answer(401, {"error": "invalid_token", "error_description": "a bearer token is required"}, "Bearer")
        try:
            claims = verify(auth[7:].strip())
        except Unavailable as e:
            logging.warning("cannot verify a bearer token: the provider is unreachable (%s)", e)
            return self.answer(
                503, {"error": "temporarily_unavailable", "error_description": "the identity provider cannot be reached"}
            )
        except Refused as e:
            logging.info("bearer token refused: %s", e)
            return self.answer(
                401,
                {"error": "invalid_token", "error_description": str(e)},
                f'Bearer error="invalid_token", error_description="{e}"',
            )
        roles = claims.get("roles") if isinstance(claims.get("roles"), list) else []
        if self.path == "/billing" and "billing" not in roles:
            why = "the token lacks a role this resource requires"
            return self.answer(
                403,
                {"error": "insufficient_scope", "error_description": why},
                f'Bearer error="insufficient_scope", error_description="{why}"',
            )
        self.answer(200, {"sub": claims["sub"], "roles": roles})

    def log_message(self, *_):
        pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
