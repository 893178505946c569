//! What an anonymous caller can hold open or make us store (items 11, 12).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestDb, spawn_app_with};
use crate::oauth::{CB, register, urlencode, web_client};

fn addr(address: &str) -> String {
    address.trim_start_matches("http://").to_owned()
}

/// Sends a request head announcing a body, then dribbles it one byte at a
/// time; returns what the server answered (or "" if it never did).
async fn dribble(address: &str, every: Duration, bytes: usize) -> String {
    let mut s = TcpStream::connect(addr(address)).await.unwrap();
    let head = "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..bytes {
        if s.write_all(b"a").await.is_err() {
            break;
        }
        tokio::time::sleep(every).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Item 11: a body dribbled a byte every 2 s kept its connection for as long
/// as the client liked. Now it must arrive within `client_body_timeout_ms`.
#[tokio::test]
async fn a_slow_request_body_is_cut_off() {
    let app = spawn_app_with(TestDb::new().await, |s| s.client_body_timeout_ms = 300).await;
    // 40 bytes at one per 50 ms: far longer than the 300 ms allowed.
    let answer = dribble(&app.address, Duration::from_millis(50), 40).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A body that arrives in time is served as before.
    let r = reqwest::Client::new().post(app.url("/token")).form(&[("grant_type", "password")]).send().await.unwrap();
    assert_eq!(r.status(), 401, "an ordinary request still reaches the endpoint");
}

/// Item 11: one address cannot hold more than `max_requests_per_ip`
/// requests open at once; others keep being served.
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let app = spawn_app_with(TestDb::new().await, |s| {
        s.client_body_timeout_ms = 3000;
        s.max_requests_per_ip = 3;
    })
    .await;
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let a = app.address.clone();
            tokio::spawn(async move { dribble(&a, Duration::from_millis(100), 10).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::Client::new().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 429, "a fourth request from the same address");
    for h in slow {
        h.await.unwrap();
    }
    let r = reqwest::Client::new().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the slots come back when the requests end");
}

/// Item 12: every anonymous `/authorize` stored a pending request (≈ 2.8 KB
/// for 10 minutes), without limit. Now an address may leave only so many.
#[tokio::test]
async fn anonymous_authorization_requests_are_bounded_per_address() {
    use portcullis::storage::entities::authorization_request;
    use sea_orm::{EntityTrait, PaginatorTrait};
    let app = spawn_app_with(TestDb::new().await, |s| s.authorize_ip_max_pending = 5).await;
    register(&app, web_client("webapp")).await;
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope=openid&state=s&code_challenge={}&code_challenge_method=S256",
        urlencode(CB),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    ));
    let http = app.browser();
    for _ in 0..5 {
        let r = http.get(&url).send().await.unwrap();
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?request="));
    }
    let r = http.get(&url).send().await.unwrap();
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(CB) && back.contains("error=temporarily_unavailable"), "{back}");
    assert_eq!(authorization_request::Entity::find().count(&app.state.db).await.unwrap(), 5);
}

/// Item 15: a body over the limit got a raw-text 413.
#[tokio::test]
async fn an_oversized_body_gets_a_json_error() {
    let app = crate::helpers::spawn_app().await;
    let r = reqwest::Client::new()
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 80 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
}
