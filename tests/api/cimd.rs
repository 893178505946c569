//! Client ID Metadata Documents (#21) through the real app: a client whose
//! id is a URL, its document fetched (once, as its Cache-Control allows) and
//! held to the rules; documents that lie about themselves, are too big,
//! carry secrets or live at private addresses are refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, location, param, spawn_app, spawn_app_with};
use crate::oauth::{PW, urlencode, walk};

const CB: &str = "http://127.0.0.1:9/callback";

/// A web server of client documents on loopback; counts fetches.
async fn documents() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (base.clone(), hits.clone());
    let server = actix_web::HttpServer::new(move || {
        let (b, h) = (b.clone(), h.clone());
        actix_web::App::new().default_service(actix_web::web::to(move |req: actix_web::HttpRequest| {
            let (b, h) = (b.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let me = format!("{b}{}", req.path());
                let doc = match req.path() {
                    "/good.json" => json!({ "client_id": me, "client_name": "Doc Agent", "redirect_uris": [CB],
                        "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
                        "scope": "openid profile admin" }),
                    "/liar.json" => json!({ "client_id": format!("{b}/someone-else.json"), "redirect_uris": [CB] }),
                    "/secret.json" => json!({ "client_id": me, "redirect_uris": [CB], "client_secret": "x" }),
                    "/big.json" => json!({ "client_id": me, "redirect_uris": [CB], "padding": "x".repeat(6000) }),
                    _ => return actix_web::HttpResponse::NotFound().finish(),
                };
                actix_web::HttpResponse::Ok().insert_header(("Cache-Control", "max-age=600")).json(doc)
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (base, hits)
}

fn authorize_url(app: &TestApp, client_id: &str) -> String {
    let verifier = "w".repeat(50);
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    app.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(client_id),
        urlencode(CB)
    ))
}

async fn documents_app() -> TestApp {
    spawn_app_with(TestDb::new().await, |s| {
        s.client_id_documents = true;
        s.client_id_documents_allow_private = true; // the documents live on loopback here
    })
    .await
}

#[tokio::test]
async fn a_client_named_by_its_metadata_document_signs_a_user_in_with_consent_every_time() {
    let (base, hits) = documents().await;
    let app = documents_app().await;
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["client_id_metadata_document_supported"], true);
    app.create_user("dee", PW, &[]).await;
    let id = format!("{base}/good.json");
    let b = app.browser();
    let r = b.get(authorize_url(&app, &id)).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let back = walk(&app, &b, &authorize_url(&app, &id), "dee", PW).await;
    let code = param(&back, "code").expect("a code");
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", &"w".repeat(50)),
    ];
    let t: Value =
        reqwest::Client::new().post(app.url("/token")).form(&form).send().await.unwrap().json().await.unwrap();
    let claims = crate::helpers::claims_of(t["access_token"].as_str().expect("tokens"));
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "openid profile", "admin is not a scope a document can claim");
    // Signed in and consented once: asked again (a document client always asks).
    let r = b.get(authorize_url(&app, &id)).send().await.unwrap();
    assert!(location(&r).starts_with("/consent"), "{}", location(&r));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached as Cache-Control allows");
}

#[tokio::test]
async fn documents_that_lie_are_too_big_carry_secrets_or_live_at_private_addresses_are_refused() {
    let (base, hits) = documents().await;
    let app = documents_app().await;
    let b = app.browser();
    for doc in ["liar", "secret", "big", "missing"] {
        let r = b.get(authorize_url(&app, &format!("{base}/{doc}.json"))).send().await.unwrap();
        assert_eq!(r.status(), 400, "{doc}");
        assert_eq!(location(&r), "", "{doc}: never a redirect to the document's URIs");
    }
    // The token endpoint refuses such a client too.
    let r = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[("grant_type", "authorization_code"), ("client_id", &format!("{base}/liar.json")), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Without the test switch: https only, and public addresses only — refused before any fetch.
    let app = spawn_app_with(TestDb::new().await, |s| s.client_id_documents = true).await;
    let before = hits.load(Ordering::SeqCst);
    for id in [
        format!("{base}/good.json"),
        "https://127.0.0.1/good.json".into(),
        "https://10.0.0.1/x.json".into(),
        "https://[::1]/x.json".into(),
        "https://169.254.169.254/latest/meta-data".into(),
    ] {
        let r = b.get(authorize_url(&app, &id)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{id}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), before, "nothing was fetched");

    // Off by default.
    let app = spawn_app().await;
    let r = b.get(authorize_url(&app, &format!("{base}/good.json"))).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["client_id_metadata_document_supported"], false);
}
