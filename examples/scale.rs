// Flat as data grows: seeds a database with USERS users (all with the same
// password hash), CLIENTS clients and FAMILIES live refresh-token families,
// serves it in-process, and measures the latency of a password login, a code
// exchange, a refresh and two introspections (JWT access token, opaque
// refresh token), one request at a time.
//
//   DATABASE_URL=sqlite:///tmp/scale.db?mode=rwc USERS=1000000 CLIENTS=1000 FAMILIES=1000000 \
//     cargo run --release --example scale
//
// A fresh database is expected (the seeding does not check for duplicates).
// See docs/PERFORMANCE.md for the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine;
use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::startup::Application;
use portcullis::state::AppState;
use portcullis::storage::entities::{password_credential, refresh_family, refresh_token, user};
use sea_orm::{EntityTrait, Set};
use secrecy::{ExposeSecret, SecretString};

const PASSWORD: &str = "violet anvil tramline";
const CB: &str = "http://127.0.0.1:9/cb";
const BATCH: usize = 1_000;

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_owned())
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn report(name: &str, mut v: Vec<Duration>) {
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} |",
        v.len(),
        pct(&mut v, 0.5),
        pct(&mut v, 0.95),
        pct(&mut v, 0.99)
    );
}

async fn seed(state: &AppState, users: usize, clients: usize, families: usize) -> Vec<String> {
    let started = Instant::now();
    let phc = state.passwords.hash(&SecretString::from(PASSWORD)).await.unwrap();
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let mut ids = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(BATCH) {
        let mut us = Vec::with_capacity(chunk.len());
        let mut pws = Vec::with_capacity(chunk.len());
        for i in chunk {
            let id = uuid::Uuid::new_v4().to_string();
            let name = format!("u{i:07}");
            us.push(user::ActiveModel {
                id: Set(id.clone()),
                username: Set(name.clone()),
                username_key: Set(name),
                email: Set(None),
                display_name: Set(None),
                phone_number: Set(None),
                address: Set(None),
                disabled: Set(false),
                email_verified: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
                managed_by: Set(None),
            });
            pws.push(password_credential::ActiveModel {
                user_id: Set(id.clone()),
                phc: Set(phc.clone()),
                updated_at: Set(now),
            });
            ids.push(id);
        }
        let txn = portcullis::storage::begin_write(&state.db).await.unwrap();
        user::Entity::insert_many(us).exec(&txn).await.unwrap();
        password_credential::Entity::insert_many(pws).exec(&txn).await.unwrap();
        txn.commit().await.unwrap();
    }
    eprintln!("{users} users in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut client_ids = Vec::new();
    for i in 0..clients {
        let id = format!("client{i:04}");
        let spec = ClientSpec {
            client_id: id.clone(),
            redirect_uris: vec![CB.into()],
            first_party: true,
            ..Default::default()
        };
        portcullis::admin::clients::add(state, &Actor::cli(), &spec).await.unwrap();
        client_ids.push(id);
    }
    eprintln!("{clients} clients in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let hasher = state.master_key.hasher();
    for start in (0..families).step_by(BATCH) {
        let n = BATCH.min(families - start);
        let mut fams = Vec::with_capacity(n);
        let mut toks = Vec::with_capacity(n);
        for j in 0..n {
            let fid = uuid::Uuid::new_v4().to_string();
            let k = start + j;
            fams.push(refresh_family::ActiveModel {
                id: Set(fid.clone()),
                grant_id: Set(None),
                client_id: Set(client_ids[k % client_ids.len()].clone()),
                user_id: Set(ids[k % ids.len()].clone()),
                session_id: Set(None),
                revoked_ms: Set(None),
                created_ms: Set(now_ms),
                expires_ms: Set(now_ms + 30 * 86_400_000),
                dpop_jkt: Set(None),
            });
            toks.push(refresh_token::ActiveModel {
                token_hash: Set(hasher.hash(&format!("refresh:seed-{fid}"))),
                family_id: Set(fid),
                scope: Set("openid".into()),
                resource: Set(None),
                auth_time: Set(now.timestamp()),
                amr: Set(r#"["pwd"]"#.into()),
                acr: Set(Some("1".into())),
                created_ms: Set(now_ms),
                expires_ms: Set(now_ms + 30 * 86_400_000),
                rotated_ms: Set(None),
                grace_used: Set(false),
                claims: Set(None),
            });
        }
        let txn = portcullis::storage::begin_write(&state.db).await.unwrap();
        refresh_family::Entity::insert_many(fams).exec(&txn).await.unwrap();
        refresh_token::Entity::insert_many(toks).exec(&txn).await.unwrap();
        txn.commit().await.unwrap();
    }
    eprintln!("{families} refresh families in {:.1} s", started.elapsed().as_secs_f64());
    client_ids
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let i = html.find(marker).unwrap() + marker.len();
    html[i..].split('"').next().unwrap().to_owned()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

#[tokio::main]
async fn main() {
    let url = env("DATABASE_URL", "sqlite:///tmp/portcullis-scale.db?mode=rwc");
    let users: usize = env("USERS", "1000").parse().unwrap();
    let clients: usize = env("CLIENTS", "1000").parse().unwrap();
    let families: usize = env("FAMILIES", "1000").parse().unwrap();
    let samples: usize = env("SAMPLES", "300").parse().unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut settings = Settings::for_test(&url, &key);
    settings.issuer = base.clone();
    settings.login_ip_max_attempts = 1_000_000;
    settings.database_max_connections = 16;
    let (state, _) = AppState::build(settings, Clock::System).await.unwrap();
    state.prepare_keys().await.unwrap();
    let client_ids = seed(&state, users, clients, families).await;
    let secret = {
        let spec = ClientSpec {
            client_id: "measured".into(),
            redirect_uris: vec![CB.into()],
            first_party: true,
            ..Default::default()
        };
        portcullis::admin::clients::add(&state, &Actor::cli(), &spec).await.unwrap().secret.unwrap()
    };
    let secret = secret.expose_secret().to_owned();
    drop(client_ids);
    let app = Application::build_on(listener, state.clone()).unwrap();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let backend = portcullis::storage::backend_name(&state.db);
    println!("\n{backend}: {users} users, {clients} clients, {families} live refresh families");
    println!("| operation | n | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|");

    // Password logins of users spread over the whole table.
    let mut lat = Vec::new();
    let logins = (samples / 3).max(30);
    for i in 0..logins {
        let b = browser();
        let page = b.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
        let name = format!("u{:07}", (i * 7919) % users);
        let form = [("csrf", csrf_in(&page)), ("username", name), ("password", PASSWORD.into())];
        let t = Instant::now();
        let r = b.post(format!("{base}/login")).form(&form).send().await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(r.status(), 303, "login");
    }
    report("password login (argon2id)", lat);

    // One logged-in browser; codes issued to it and exchanged.
    let b = browser();
    let page = b.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_in(&page)), ("username", format!("u{:07}", users / 2)), ("password", PASSWORD.into())];
    b.post(format!("{base}/login")).form(&form).send().await.unwrap();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let authorize = format!(
        "{base}/authorize?response_type=code&client_id=measured&redirect_uri={}&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    );
    let mut lat = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..samples {
        let r = b.get(&authorize).send().await.unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let code = url::Url::parse(&loc).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ];
        let t = Instant::now();
        let r =
            http.post(format!("{base}/token")).basic_auth("measured", Some(&secret)).form(&form).send().await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(r.status(), 200);
        last = r.json().await.unwrap();
    }
    report("code exchange", lat);

    let mut rt = last["refresh_token"].as_str().unwrap().to_owned();
    let at = last["access_token"].as_str().unwrap().to_owned();
    let mut lat = Vec::new();
    for _ in 0..samples {
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
        let t = Instant::now();
        let r =
            http.post(format!("{base}/token")).basic_auth("measured", Some(&secret)).form(&form).send().await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        rt = v["refresh_token"].as_str().unwrap().to_owned();
    }
    report("refresh (rotation)", lat);

    for (name, token) in [("introspect access token (JWT)", &at), ("introspect refresh token (opaque)", &rt)] {
        let mut lat = Vec::new();
        for _ in 0..samples {
            let t = Instant::now();
            let r = http
                .post(format!("{base}/introspect"))
                .basic_auth("measured", Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            lat.push(t.elapsed());
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["active"], true, "{name}");
        }
        report(name, lat);
    }
}
