#!/usr/bin/env python3
"""Checks every route of a running Portcullis for the security headers, cookie
flags and error bodies users rely on. Usage: check_http.py BASE USER PASSWORD.
Exits non-zero listing every violation."""
import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

base, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
problems = []
checked = 0

LEAKS = re.compile(r"panicked|DbErr|sqlx|sea_orm|SQLSTATE|stack backtrace|RUST_BACKTRACE|src/[a-z_/]+\.rs|violet anvil", re.I)
REQUIRED = {
    "x-content-type-options": lambda v: v == "nosniff",
    "referrer-policy": lambda v: v == "no-referrer",
    "x-frame-options": lambda v: v == "DENY",
    "content-security-policy": lambda v: "default-src 'none'" in v and "frame-ancestors 'none'" in v
    and "object-src 'none'" in v and "base-uri 'none'" in v
    and "unsafe-inline" not in v and "unsafe-eval" not in v,
    "cache-control": lambda v: bool(v),
}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))


def request(method, path, data=None, headers=None):
    global checked
    body = data if isinstance(data, (bytes, type(None))) else urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    if body is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        resp = opener.open(req, timeout=10)
        status, hdrs, text = resp.status, resp.headers, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read().decode("utf-8", "replace")
    checked += 1
    where = f"{method} {path} -> {status}"
    if status >= 500 and status != 503:
        problems.append(f"{where}: server error")
    for name, ok in REQUIRED.items():
        value = hdrs.get(name)
        if value is None or not ok(value):
            problems.append(f"{where}: header {name} is {value!r}")
    if not path.startswith("/static/") and not path.startswith("/.well-known/") and path != "/jwks":
        if "no-store" not in (hdrs.get("cache-control") or ""):
            problems.append(f"{where}: cache-control {hdrs.get('cache-control')!r} lacks no-store")
    for cookie in hdrs.get_all("set-cookie") or []:
        attrs = cookie.lower()
        if "httponly" not in attrs:
            problems.append(f"{where}: cookie without HttpOnly: {cookie.split('=')[0]}")
        if "samesite=" not in attrs:
            problems.append(f"{where}: cookie without SameSite: {cookie.split('=')[0]}")
        if "path=/" not in attrs:
            problems.append(f"{where}: cookie without Path=/: {cookie.split('=')[0]}")
    leak = LEAKS.search(text)
    if leak:
        problems.append(f"{where}: body leaks {leak.group(0)!r}")
    if status >= 400 and hdrs.get("content-type", "").startswith("application/json") is False and not text:
        problems.append(f"{where}: empty error body")
    return status, text


ANONYMOUS_GETS = [
    "/", "/healthz", "/readyz", "/metrics", "/login", "/login?request=nope", "/logout", "/account",
    "/login/mfa", "/login/enrol", "/account/mfa", "/consent?request=nope", "/authorize",
    "/authorize?client_id=nope&redirect_uri=x", "/authorize?client_id=dast-web&redirect_uri=http://evil.example/",
    "/authorize?client_id=dast-web&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=token",
    "/authorize/continue?request=nope", "/.well-known/openid-configuration", "/jwks", "/userinfo",
    "/end_session", "/end_session?id_token_hint=garbage", "/admin", "/admin/users", "/admin/users/alice",
    "/admin/clients", "/admin/roles", "/admin/audit", "/admin/reauth", "/admin/api/openapi.json",
    "/admin/api/v1/users", "/admin/api/v1/users/alice", "/admin/api/v1/audit?per_page=9999",
    "/static/portcullis.css", "/no/such/page", "/%ff%fe", "/login?m=%00",
    "/device", "/device?user_code=BCDF-GHJK", "/device/qr?user_code=BCDF-GHJK", "/register/dyn-nope",
]
ANONYMOUS_POSTS = [
    ("/token", {}), ("/token", {"grant_type": "password", "username": "a", "password": "b"}),
    ("/token", {"grant_type": "client_credentials", "client_id": "dast-web", "client_secret": "x"}),
    ("/introspect", {"token": "x"}), ("/revoke", {"token": "x"}), ("/userinfo", {}),
    ("/par", {"client_id": "dast-web", "response_type": "code"}), ("/par", {}),
    ("/device_authorization", {"client_id": "dast-web"}), ("/register", {}),
    ("/device", {"csrf": "x", "user_code": "BCDFGHJK", "decision": "approve"}),
    ("/login", {"username": "alice", "password": "wrong", "csrf": "forged"}),
    ("/login/mfa", {"code": "123456", "csrf": "x"}), ("/account/password", {"csrf": "x"}),
    ("/logout", {"csrf": "x"}), ("/consent", {"csrf": "x", "request": "x", "decision": "approve"}),
    ("/admin/users/alice/disable", {"csrf": "x"}), ("/admin/reauth", {"csrf": "x"}),
    ("/authorize", {"client_id": "dast-web"}), ("/end_session", {}),
    ("/token", b"grant_type=client_credentials&grant_type=client_credentials"),
    ("/login", b"username=%ff&password=x"),
    ("/token", b"x" * (70 * 1024)),
]

for path in ANONYMOUS_GETS:
    request("GET", path)
for path, data in ANONYMOUS_POSTS:
    request("POST", path, data)
status, _ = request("POST", "/admin/api/v1/users", b'{"username": 1}',
                    {"Content-Type": "application/json", "Authorization": "Bearer not-a-token"})
if status != 401:
    problems.append(f"admin API without a valid token answered {status}")

# A logged-in pass: the login sets its cookies; pages behind the session.
status, page = request("GET", "/login")
found = re.search(r'name="csrf" value="([^"]+)"', page)
if not found:
    problems.append("the login page has no CSRF field")
else:
    status, _ = request("POST", "/login", {"csrf": found.group(1), "username": user, "password": password})
    if status != 303:
        problems.append(f"login as {user} answered {status}")
for path in ["/account", "/account/mfa", "/admin/users", "/logout", "/login"]:
    request("GET", path)
status, page = request("GET", "/account")
csrf = re.search(r'name="csrf" value="([^"]+)"', page)
if csrf:
    request("POST", "/account/password", {"csrf": csrf.group(1), "current_password": "nope", "new_password": "short"})
    request("POST", "/logout", {"csrf": csrf.group(1)})

print(f"checked {checked} responses")
if problems:
    print("\n".join(problems))
    sys.exit(1)
