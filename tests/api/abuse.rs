//! Abuse limits: bounded bodies and headers, slow clients cut off, failed
//! client authentications throttled per address — and legitimate traffic
//! carries on through each of them.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use portcullis::admin::clients::ClientSpec;

use crate::helpers::{TestApp, TestDb, spawn_app, spawn_app_with};
use crate::oauth::{register, token_req};

async fn healthy(app: &TestApp) {
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_buffered() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for path in ["/token", "/login", "/admin/api/v1/users", "/authorize"] {
        let r = http
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; 80 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
    }
    healthy(&app).await;
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let app = spawn_app().await;
    // actix-http bounds a request head at 128 KiB and 96 headers: beyond
    // either, 431 (or the connection is closed before an answer).
    let http = reqwest::Client::new();
    let big = http.get(app.url("/healthz")).header("x-junk", "j".repeat(200 * 1024)).send().await;
    let mut many = http.get(app.url("/healthz"));
    for i in 0..120 {
        many = many.header(format!("x-h{i}"), "v");
    }
    for r in [big, many.send().await] {
        match r {
            Ok(r) => assert_eq!(r.status(), 431),
            Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
        }
    }
    healthy(&app).await;
}

#[tokio::test]
async fn a_slow_client_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(TestDb::new().await, |s| s.client_request_timeout_ms = 1500).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Half a request head, then nothing.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf); // returns when the server closes
        (started.elapsed(), String::from_utf8_lossy(&buf).into_owned())
    });
    healthy(&app).await;
    let (waited, answer) = tokio::task::spawn_blocking(move || slow.join().unwrap()).await.unwrap();
    // Cut off after the configured 1.5 s (the 5 s default would fail this).
    assert!(waited < Duration::from_secs(4), "the slow connection was held for {waited:?}");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    healthy(&app).await;
}

#[tokio::test]
async fn failed_client_authentications_are_throttled_per_address() {
    let app = spawn_app_with(TestDb::new().await, |s| {
        s.token_ip_max_failures = 5;
        s.trust_forwarded_for = true;
    })
    .await;
    let secret = register(
        &app,
        ClientSpec { client_id: "svc".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let attempt = |from: &'static str, secret: String| {
        http.post(app.url("/token"))
            .header("x-forwarded-for", from)
            .basic_auth("svc", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("203.0.113.7", "wrong".into()).await.unwrap().status(), 401);
    }
    // Over the limit: refused before any check, even with the right secret…
    let r = attempt("203.0.113.7", secret.clone()).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // …while other addresses carry on.
    assert_eq!(attempt("198.51.100.1", secret.clone()).await.unwrap().status(), 200);
    let (s, _, _) = token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);
    // The window ends: the address is served again.
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.token_ip_window_secs));
    assert_eq!(attempt("203.0.113.7", secret).await.unwrap().status(), 200);
}

#[tokio::test]
async fn failed_admin_api_authentications_are_throttled_per_address() {
    let app = spawn_app_with(TestDb::new().await, |s| {
        s.token_ip_max_failures = 3;
        s.trust_forwarded_for = true;
    })
    .await;
    let http = reqwest::Client::new();
    let call = |from: &'static str| {
        http.get(app.url("/admin/api/v1/users")).header("x-forwarded-for", from).bearer_auth("forged").send()
    };
    for _ in 0..3 {
        assert_eq!(call("203.0.113.9").await.unwrap().status(), 401);
    }
    let r = call("203.0.113.9").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(call("198.51.100.2").await.unwrap().status(), 401, "another address is still answered");
}

/// A malformed `Authorization: Basic` header is a failed client
/// authentication like a wrong secret: counted against the address (then
/// 429) and audited — not a free, uncounted 401.
#[tokio::test]
async fn malformed_basic_credentials_count_as_failed_client_authentications() {
    use portcullis::storage::entities::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = spawn_app_with(TestDb::new().await, |s| s.token_ip_max_failures = 3).await;
    let secret = register(
        &app,
        ClientSpec { client_id: "svc".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    for header in ["Basic !!!not-base64", "Basic bm8tY29sb24", "Basic //79"] {
        let r = http
            .post(app.url("/token"))
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
    }
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("oauth.client_auth_failed"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audited, 3);
    let (s, _, _) = token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 429, "the address is over its limit, even with the right secret");
}
