//! Finance-grade OAuth (issue #20), attacked through the real app: pushed
//! authorization requests (RFC 9126), DPoP (RFC 9449) at the token endpoint,
//! UserInfo, introspection and refresh, and the FAPI 2.0 client profile.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::admin::clients::ClientSpec;
use serde_json::{Value, json};

use crate::helpers::{TestApp, claims_of, location, param, spawn_app, spawn_replica};
use crate::oauth::{CB, PW, register, urlencode, walk, web_client};

/// A client's DPoP key (ES256) and the proofs it makes.
pub struct DpopKey {
    pkcs8: Vec<u8>,
    pub jwk: Value,
    pub jkt: String,
}

impl DpopKey {
    pub fn new() -> Self {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = kp.public_key().as_ref().to_vec();
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]) });
        let jkt = portcullis::verify::dpop::thumbprint(&jwk).unwrap();
        Self { pkcs8: kp.to_pkcs8v1().unwrap().as_ref().to_vec(), jwk, jkt }
    }

    /// A proof with this header key, type and claims (for the attacks),
    /// made by hand so the header says exactly what the test wants.
    pub fn sign(&self, header_jwk: &Value, typ: &str, claims: &Value) -> String {
        let header = json!({ "typ": typ, "alg": "ES256", "jwk": header_jwk });
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8).unwrap();
        let sig = kp.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// A good proof for `htm htu` at time `iat`, with `nonce` and `ath` of `token`.
    pub fn proof(&self, htm: &str, htu: &str, iat: i64, nonce: Option<&str>, token: Option<&str>) -> String {
        let mut c = json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": iat });
        if let Some(n) = nonce {
            c["nonce"] = n.into();
        }
        if let Some(t) = token {
            c["ath"] = portcullis::verify::dpop::ath(t).into();
        }
        self.sign(&self.jwk, "dpop+jwt", &c)
    }
}

fn now(app: &TestApp) -> i64 {
    app.state.clock.now().timestamp()
}

/// A POST to `path` with optional Basic credentials and DPoP proof.
async fn post(
    url: &str,
    basic: Option<(&str, &str)>,
    dpop: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = reqwest::Client::new().post(url).form(form);
    if let Some((id, s)) = basic {
        r = r.basic_auth(id, Some(s));
    }
    if let Some(p) = dpop {
        r = r.header("DPoP", p);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

/// The nonce the server hands out (asked for with a proof that lacks one).
async fn nonce(app: &TestApp, key: &DpopKey) -> String {
    let proof = key.proof("POST", &app.url("/token"), now(app), None, None);
    let (status, body, headers) = post(&app.url("/token"), None, Some(&proof), &[("grant_type", "x")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("use_dpop_nonce")));
    headers.get("dpop-nonce").unwrap().to_str().unwrap().to_owned()
}

const VERIFIER: &str = "dpop-and-par-verifier-0123456789-0123456789-abcdef";

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()).as_ref())
}

fn authz_params<'a>(client_id: &'a str, ch: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("state", "pushed-state"),
        ("code_challenge", ch),
        ("code_challenge_method", "S256"),
    ]
}

#[tokio::test]
async fn a_pushed_request_is_used_once_as_pushed_and_nothing_in_the_query_overrides_it() {
    let app = spawn_app().await;
    app.create_user("pia", PW, &[]).await;
    let secret = register(&app, ClientSpec { require_par: true, ..web_client("bank") }).await.unwrap();
    register(&app, web_client("other")).await;
    let ch = challenge();
    let (status, body, headers) =
        post(&app.url("/par"), Some(("bank", &secret)), None, &authz_params("bank", &ch)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    let uri = body["request_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{uri}");
    assert!((1..=90).contains(&body["expires_in"].as_i64().unwrap()));

    // Another client cannot use it (and does not spend it).
    let b = app.browser();
    let r =
        b.get(app.url(&format!("/authorize?client_id=other&request_uri={}", urlencode(&uri)))).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The query tries to override scope, state and the return address: ignored.
    let url = app.url(&format!(
        "/authorize?client_id=bank&request_uri={}&scope=openid%20profile%20email&state=evil&redirect_uri={}",
        urlencode(&uri),
        urlencode("https://attacker.example/cb")
    ));
    let back = walk(&app, &b, &url, "pia", PW).await;
    assert!(back.starts_with(CB), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("pushed-state"));
    let code = param(&back, "code").unwrap();
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", VERIFIER)];
    let (status, t, _) = post(&app.url("/token"), Some(("bank", &secret)), None, &form).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["scope"], "openid", "the pushed scope, not the query's");

    // Used once: a second /authorize with it is refused.
    let r = b.get(app.url(&format!("/authorize?client_id=bank&request_uri={}", urlencode(&uri)))).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // An expired one too.
    let (_, body, _) = post(&app.url("/par"), Some(("bank", &secret)), None, &authz_params("bank", &ch)).await;
    let late = body["request_uri"].as_str().unwrap().to_owned();
    app.state.clock.advance(chrono::Duration::seconds(91));
    let r =
        b.get(app.url(&format!("/authorize?client_id=bank&request_uri={}", urlencode(&late)))).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // This client must push: a plain /authorize goes back with invalid_request.
    let direct = app.url(&format!(
        "/authorize?response_type=code&client_id=bank&redirect_uri={}&scope=openid&code_challenge={ch}&code_challenge_method=S256",
        urlencode(CB)
    ));
    let r = b.get(direct).send().await.unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn the_par_endpoint_authenticates_the_client_and_checks_the_request_as_authorize_does() {
    let app = spawn_app().await;
    let secret = register(&app, web_client("bank")).await.unwrap();
    let ch = challenge();
    let good = authz_params("bank", &ch);
    let (status, body, _) = post(&app.url("/par"), Some(("bank", "wrong")), None, &good).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (status, body, _) = post(&app.url("/par"), None, None, &good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a confidential client must authenticate"
    );
    for (name, value, code) in [
        ("redirect_uri", "https://attacker.example/cb", "invalid_request"),
        ("response_type", "token", "unsupported_response_type"),
        ("scope", "openid admin", "invalid_scope"),
        ("code_challenge_method", "plain", "invalid_request"),
        ("request_uri", "urn:ietf:params:oauth:request_uri:nested", "invalid_request"),
        ("dpop_jkt", "not-a-thumbprint", "invalid_request"),
    ] {
        let mut form: Vec<(&str, &str)> = good.iter().filter(|(k, _)| *k != name).copied().collect();
        form.push((name, value));
        let (status, body, _) = post(&app.url("/par"), Some(("bank", &secret)), None, &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{name}={value}: {body}");
    }
    // A client may not push a request in another client's name.
    let mut form: Vec<(&str, &str)> = good.iter().filter(|(k, _)| *k != "client_id").copied().collect();
    form.push(("client_id", "someone-else"));
    let (status, _, _) = post(&app.url("/par"), Some(("bank", &secret)), None, &form).await;
    assert!(status == 400 || status == 401, "{status}");
    // Advertised.
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["pushed_authorization_request_endpoint"], app.url("/par"));
    assert_eq!(d["require_pushed_authorization_requests"], false);
    assert_eq!(d["dpop_signing_alg_values_supported"], json!(["ES256", "EdDSA", "PS256", "RS256"]));
}

/// A public DPoP client's code, bound at /authorize with `dpop_jkt`.
async fn bound_code(app: &TestApp, b: &reqwest::Client, client_id: &str, jkt: &str) -> String {
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile&code_challenge={}&code_challenge_method=S256&dpop_jkt={jkt}",
        urlencode(CB),
        challenge()
    ));
    param(&walk(app, b, &url, "dora", PW).await, "code").unwrap()
}

#[tokio::test]
async fn dpop_binds_every_token_to_the_clients_key_and_refuses_every_bad_proof() {
    let app = spawn_app().await;
    app.create_user("dora", PW, &[]).await;
    register(&app, ClientSpec { public: true, dpop: true, ..web_client("wallet") }).await;
    let key = DpopKey::new();
    let thief = DpopKey::new();
    let b = app.browser();
    let token_url = app.url("/token");
    let n = nonce(&app, &key).await;
    let code = bound_code(&app, &b, "wallet", &key.jkt).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "wallet"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    // Every malformed proof is refused before the code is touched.
    let t = now(&app);
    let c = |htm: &str, htu: &str, iat: i64| json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": iat, "nonce": n });
    let mut private = key.jwk.clone();
    private["d"] = "AAAA".into();
    let bad = [
        ("no nonce", key.proof("POST", &token_url, t, None, None), "use_dpop_nonce"),
        ("a stale nonce", key.proof("POST", &token_url, t, Some("1.abc"), None), "use_dpop_nonce"),
        (
            "wrong htu",
            key.sign(&key.jwk, "dpop+jwt", &c("POST", "https://elsewhere.example/token", t)),
            "invalid_dpop_proof",
        ),
        (
            "htu with another path",
            key.sign(&key.jwk, "dpop+jwt", &c("POST", &app.url("/userinfo"), t)),
            "invalid_dpop_proof",
        ),
        ("wrong htm", key.sign(&key.jwk, "dpop+jwt", &c("GET", &token_url, t)), "invalid_dpop_proof"),
        ("stale iat", key.sign(&key.jwk, "dpop+jwt", &c("POST", &token_url, t - 300)), "invalid_dpop_proof"),
        ("future iat", key.sign(&key.jwk, "dpop+jwt", &c("POST", &token_url, t + 300)), "invalid_dpop_proof"),
        ("typ JWT", key.sign(&key.jwk, "JWT", &c("POST", &token_url, t)), "invalid_dpop_proof"),
        ("a private key in jwk", key.sign(&private, "dpop+jwt", &c("POST", &token_url, t)), "invalid_dpop_proof"),
        ("signed by another key", key.sign(&thief.jwk, "dpop+jwt", &c("POST", &token_url, t)), "invalid_dpop_proof"),
    ];
    for (what, proof, code) in &bad {
        let (status, body, headers) = post(&token_url, None, Some(proof), &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(*code)), "{what}: {body}");
        assert!(headers.get("dpop-nonce").is_some(), "{what}: a fresh nonce comes with every answer");
    }
    // Without a proof, or with the thief's key: refused (the code is bound).
    let (status, body, _) = post(&token_url, None, None, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let (status, body, _) =
        post(&token_url, None, Some(&thief.proof("POST", &token_url, t, Some(&n), None)), &form).await;
    assert_eq!(status, 400, "{body}");

    // A fresh code, redeemed properly: the token is DPoP-bound to the key.
    let code = bound_code(&app, &b, "wallet", &key.jkt).await;
    let form = [form[0], form[1], ("code", code.as_str()), form[3], form[4]];
    let good = key.proof("POST", &token_url, t, Some(&n), None);
    let (status, tok, _) = post(&token_url, None, Some(&good), &form).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "DPoP");
    let access = tok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access)["cnf"]["jkt"], key.jkt.as_str());
    // The same proof again, here or at another instance: replayed.
    let (status, body, _) = post(&token_url, None, Some(&good), &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let replica = spawn_replica(&app, |_| {}).await;
    let refresh = tok["refresh_token"].as_str().unwrap().to_owned();
    let rform = [("grant_type", "refresh_token"), ("client_id", "wallet"), ("refresh_token", refresh.as_str())];
    let at_replica = key.proof("POST", &token_url, t, Some(&n), None);
    let (status, _, _) = post(&app.url("/token"), None, Some(&at_replica), &rform).await;
    assert_eq!(status, 200, "the proof's first use");
    let (status, body, _) = post(&replica.url("/token"), None, Some(&at_replica), &rform).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "replayed on another instance: {body}"
    );

    // UserInfo: the bound token as a bearer token is refused; with a proof
    // of its key for this token (ath), accepted.
    let ui = app.url("/userinfo");
    let get = |scheme: &str, proof: Option<String>| {
        let mut r = reqwest::Client::new().get(&ui).header("Authorization", format!("{scheme} {access}"));
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        r.send()
    };
    // A caller without a valid bound token makes us store nothing.
    use sea_orm::{EntityTrait, PaginatorTrait};
    let rows = || portcullis::storage::entities::dpop_proof::Entity::find().count(&app.state.db);
    let before = rows().await.unwrap();
    let r = reqwest::Client::new()
        .get(&ui)
        .header("Authorization", "DPoP garbage")
        .header("DPoP", key.proof("GET", &ui, t, None, Some("garbage")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(rows().await.unwrap(), before);
    let r = get("Bearer", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let r = get("DPoP", None).await.unwrap();
    assert_eq!(r.status(), 401, "no proof");
    let r = get("DPoP", Some(key.proof("GET", &ui, t, None, None))).await.unwrap();
    assert_eq!(r.status(), 401, "no ath");
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("DPoP error=\"invalid_dpop_proof\""));
    let r = get("DPoP", Some(key.proof("GET", &ui, t, None, Some("another-token")))).await.unwrap();
    assert_eq!(r.status(), 401, "ath of another token");
    let r = get("DPoP", Some(thief.proof("GET", &ui, t, None, Some(&access)))).await.unwrap();
    assert_eq!(r.status(), 401, "the thief's key");
    let ok = key.proof("GET", &ui, t, None, Some(&access));
    let r = get("DPoP", Some(ok.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = get("DPoP", Some(ok)).await.unwrap();
    assert_eq!(r.status(), 401, "a UserInfo proof is single-use too");
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_worthless_without_its_key() {
    let app = spawn_app().await;
    app.create_user("dora", PW, &[]).await;
    register(&app, ClientSpec { public: true, ..web_client("app") }).await;
    let key = DpopKey::new();
    let thief = DpopKey::new();
    let b = app.browser();
    let token_url = app.url("/token");
    let n = nonce(&app, &key).await;
    let t = now(&app);
    let code = bound_code(&app, &b, "app", &key.jkt).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "app"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", VERIFIER),
    ];
    let (status, tok, _) = post(&token_url, None, Some(&key.proof("POST", &token_url, t, Some(&n), None)), &form).await;
    assert_eq!(status, 200, "{tok}");
    let refresh = tok["refresh_token"].as_str().unwrap().to_owned();
    let rform = [("grant_type", "refresh_token"), ("client_id", "app"), ("refresh_token", refresh.as_str())];
    let (status, body, _) = post(&token_url, None, None, &rform).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "stolen, no key: {body}");
    let (status, _, _) =
        post(&token_url, None, Some(&thief.proof("POST", &token_url, t, Some(&n), None)), &rform).await;
    assert_eq!(status, 400, "stolen, with the thief's key");
    // The holder's refresh still works (the attempts did not burn it).
    let (status, body, _) =
        post(&token_url, None, Some(&key.proof("POST", &token_url, t, Some(&n), None)), &rform).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims_of(body["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt.as_str());

    // A code redeemed without a proof: the first refresh that brings one
    // binds the family from then on (RFC 9449 §5).
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=app&redirect_uri={}&scope=openid&code_challenge={}&code_challenge_method=S256",
        urlencode(CB),
        challenge()
    ));
    let code = param(&walk(&app, &b, &url, "dora", PW).await, "code").unwrap();
    let form = [form[0], form[1], ("code", code.as_str()), form[3], form[4]];
    let (status, tok, _) = post(&token_url, None, None, &form).await;
    assert_eq!((status, tok["token_type"].as_str()), (200, Some("Bearer")), "{tok}");
    let rt = tok["refresh_token"].as_str().unwrap().to_owned();
    let rform = [rform[0], rform[1], ("refresh_token", rt.as_str())];
    let (status, body, _) =
        post(&token_url, None, Some(&key.proof("POST", &token_url, t, Some(&n), None)), &rform).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body, _) = post(&token_url, None, None, &[rform[0], rform[1], ("refresh_token", rt.as_str())]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "now bound: {body}");
}

#[tokio::test]
async fn a_dpop_service_client_gets_bound_tokens_only_and_introspection_shows_the_binding() {
    let app = spawn_app().await;
    let secret = register(
        &app,
        ClientSpec {
            client_id: "payments".into(),
            grants: vec!["client_credentials".into()],
            dpop: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let key = DpopKey::new();
    let token_url = app.url("/token");
    let n = nonce(&app, &key).await;
    let form = [("grant_type", "client_credentials")];
    let (status, body, _) = post(&token_url, Some(("payments", &secret)), None, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let proof = key.proof("POST", &token_url, now(&app), Some(&n), None);
    let (status, tok, _) = post(&token_url, Some(("payments", &secret)), Some(&proof), &form).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "DPoP");
    let access = tok["access_token"].as_str().unwrap();
    let (status, i, _) = post(&app.url("/introspect"), Some(("payments", &secret)), None, &[("token", access)]).await;
    assert_eq!(status, 200);
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["cnf"]["jkt"], key.jkt.as_str());
}

/// An ES256 client key for `private_key_jwt`.
struct ClientKey {
    pkcs8: Vec<u8>,
    jwks: Value,
}

impl ClientKey {
    fn new() -> Self {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = kp.public_key().as_ref().to_vec();
        let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "c1", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]) }] });
        Self { pkcs8: kp.to_pkcs8v1().unwrap().as_ref().to_vec(), jwks }
    }

    fn assertion(&self, app: &TestApp, client_id: &str, aud: &str) -> String {
        let t = now(app);
        let claims = json!({ "iss": client_id, "sub": client_id, "aud": aud, "exp": t + 60, "iat": t,
            "jti": uuid::Uuid::new_v4().to_string() });
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("c1".into());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::test]
async fn a_fapi2_client_is_held_to_the_profile_everywhere() {
    let app = spawn_app().await;
    app.create_user("fay", PW, &[]).await;
    let ck = ClientKey::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, ck.jwks.to_string()).unwrap();
    let jwks = jwks_file.to_str().unwrap();
    // Registration refuses what the profile forbids, naming it.
    for (extra, why) in [
        (vec!["--public"], "confidential"),
        (vec![], "--jwks"),
        (vec!["--jwks", jwks, "--id-token-alg", "RS256"], "RS256"),
        (vec!["--jwks", jwks, "--pkce", "optional"], "PKCE"),
    ] {
        let mut args = vec!["client", "add", "x", "--redirect-uri", CB, "--profile", "fapi2"];
        args.extend(extra);
        crate::helpers::assert_clean_failure(&app.db.cli(&args, None), why);
    }
    let out = app
        .db
        .cli(&["client", "add", "fintech", "--redirect-uri", CB, "--profile", "fapi2", "--jwks", jwks, "--json"], None);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let created: Value = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap();
    assert!(created["client_secret"].is_null(), "a FAPI 2.0 client authenticates with its keys only: {created}");
    let shown: Value =
        serde_json::from_str(&crate::helpers::stdout(&app.db.cli(&["client", "show", "fintech", "--json"], None)))
            .unwrap();
    assert_eq!(shown["profile"], "fapi2");
    assert_eq!(shown["id_token_alg"], "ES256");

    let key = DpopKey::new();
    let b = app.browser();
    let ch = challenge();
    // Not pushed: refused at /authorize.
    let r = b
        .get(app.url(&format!(
            "/authorize?response_type=code&client_id=fintech&redirect_uri={}&scope=openid&code_challenge={ch}&code_challenge_method=S256",
            urlencode(CB)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location(&r), "error").as_deref(), Some("invalid_request"));
    let n = nonce(&app, &key).await;
    let (status, body, _) = push_fapi(&app, &ck, &key, &n, &[("response_mode", "form_post")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "form_post: {body}");
    let (status, body, _) =
        push_fapi(&app, &ck, &key, &n, &[("code_challenge", ""), ("code_challenge_method", "")]).await;
    assert_eq!(status, 400, "no PKCE: {body}");
    // A secret-style authentication is refused even with a valid assertion elsewhere.
    let (status, body, _) =
        post(&app.url("/par"), Some(("fintech", "guess")), None, &authz_params("fintech", &ch)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    let code = fapi_code(&app, &b, &ck, &key, &n).await;
    // The code lives at most 60 s and is bound to the key of PAR's proof.
    use sea_orm::EntityTrait;
    let rows = portcullis::storage::entities::authorization_code::Entity::find().all(&app.state.db).await.unwrap();
    assert!(rows.iter().all(|r| r.expires_ms - r.created_ms <= 60_000));
    assert!(rows.iter().all(|r| r.dpop_jkt.as_deref() == Some(key.jkt.as_str())), "PAR's proof bound the code");
    let token_url = app.url("/token");
    let redeem = async |code: &str, proof: Option<&str>| {
        let assertion = ck.assertion(&app, "fintech", &app.address);
        let f = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ];
        post(&token_url, None, proof, &f).await
    };
    let (status, body, _) = redeem(&code, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "no DPoP: {body}");
    let other = DpopKey::new();
    let (status, body, _) = redeem(&code, Some(&other.proof("POST", &token_url, now(&app), Some(&n), None))).await;
    assert_eq!(status, 400, "another key than the one PAR bound: {body}");
    // All in order, with a new code.
    let code = fapi_code(&app, &b, &ck, &key, &n).await;
    let (status, tok, _) = redeem(&code, Some(&key.proof("POST", &token_url, now(&app), Some(&n), None))).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "DPoP");
    assert_eq!(claims_of(tok["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt.as_str());
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(tok["id_token"].as_str().unwrap().split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
}

/// A pushed request of the FAPI client (private_key_jwt, DPoP proof), with
/// `extra` replacing or adding parameters (an empty value removes one).
async fn push_fapi(
    app: &TestApp,
    ck: &ClientKey,
    key: &DpopKey,
    n: &str,
    extra: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let par_url = app.url("/par");
    // RFC 9126 §2: the PAR endpoint's URL is an audience the server accepts.
    let assertion = ck.assertion(app, "fintech", &par_url);
    let proof = key.proof("POST", &par_url, now(app), Some(n), None);
    let ch = challenge();
    let mut form: Vec<(&str, &str)> = authz_params("fintech", &ch);
    form.push(("client_assertion_type", JWT_BEARER));
    form.push(("client_assertion", &assertion));
    form.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    form.extend(extra.iter().filter(|(_, v)| !v.is_empty()).copied());
    post(&par_url, None, Some(&proof), &form).await
}

/// A code of the FAPI client through PAR and a browser login.
async fn fapi_code(app: &TestApp, b: &reqwest::Client, ck: &ClientKey, key: &DpopKey, n: &str) -> String {
    let (status, body, _) = push_fapi(app, ck, key, n, &[]).await;
    assert_eq!(status, 201, "{body}");
    let uri = body["request_uri"].as_str().unwrap();
    let back =
        walk(app, b, &app.url(&format!("/authorize?client_id=fintech&request_uri={}", urlencode(uri))), "fay", PW)
            .await;
    assert_eq!(param(&back, "iss").as_deref(), Some(app.address.as_str()), "iss in the response (RFC 9207)");
    param(&back, "code").unwrap()
}

#[tokio::test]
async fn a_service_protected_by_portcullis_verify_rejects_a_stolen_dpop_token() {
    let app = spawn_app().await;
    let secret = register(
        &app,
        ClientSpec {
            client_id: "caller".into(),
            grants: vec!["client_credentials".into()],
            resources: vec![crate::relying::API.to_owned()],
            dpop: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (base, verifier) = crate::relying::backend(&app, |_| {}).await;
    let key = DpopKey::new();
    let thief = DpopKey::new();
    let token_url = app.url("/token");
    let n = nonce(&app, &key).await;
    let proof = key.proof("POST", &token_url, now(&app), Some(&n), None);
    let form = [("grant_type", "client_credentials"), ("resource", crate::relying::API)];
    let (status, tok, _) = post(&token_url, Some(("caller", &secret)), Some(&proof), &form).await;
    assert_eq!(status, 200, "{tok}");
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let me = format!("{base}/me");
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let call = async |scheme: &str, proof: Option<String>| {
        let mut r = reqwest::Client::new().get(&me).header("Authorization", format!("{scheme} {access}"));
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        let resp = r.send().await.unwrap();
        let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (resp.status().as_u16(), www)
    };
    let (status, www) = call("Bearer", None).await;
    assert_eq!(status, 401, "a bound token as a bearer token");
    assert!(www.contains("invalid_token"), "{www}");
    // The library's own calls refuse it as a bearer token too.
    assert!(matches!(verifier.verify(&access).await, Err(portcullis::verify::VerifyError::Bound)));
    assert!(matches!(verifier.verify_online(&access).await, Err(portcullis::verify::VerifyError::Bound)));
    // A proof made for another host, passed off with X-Forwarded-Host: refused.
    let elsewhere = key.proof("GET", "https://a.example/me", wall, None, Some(&access));
    let r = reqwest::Client::new()
        .get(&me)
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", elsewhere)
        .header("X-Forwarded-Host", "a.example")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "forwarded headers do not choose the htu");
    assert_eq!(call("DPoP", None).await.0, 401, "no proof");
    assert_eq!(call("DPoP", Some(thief.proof("GET", &me, wall, None, Some(&access)))).await.0, 401, "the thief's key");
    assert_eq!(
        call("DPoP", Some(key.proof("GET", &format!("{base}/billing"), wall, None, Some(&access)))).await.0,
        401,
        "another htu"
    );
    assert_eq!(call("DPoP", Some(key.proof("POST", &me, wall, None, Some(&access)))).await.0, 401, "another htm");
    assert_eq!(call("DPoP", Some(key.proof("GET", &me, wall - 600, None, Some(&access)))).await.0, 401, "stale");
    assert_eq!(
        call("DPoP", Some(key.proof("GET", &me, wall, None, Some("other")))).await.0,
        401,
        "ath of another token"
    );
    let good = key.proof("GET", &me, wall, None, Some(&access));
    assert_eq!(call("DPoP", Some(good.clone())).await.0, 200);
    let (status, www) = call("DPoP", Some(good)).await;
    assert_eq!(status, 401, "replayed");
    assert!(www.starts_with("DPoP error=\"invalid_dpop_proof\""), "{www}");
}
