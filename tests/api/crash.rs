//! Crash safety: SIGKILL the server in the middle of logins, token refreshes
//! and admin-API registrations, start it again, and check that every
//! acknowledged write is there and no refresh family was left half-rotated.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::helpers::{csrf_in, spawn_app};
use crate::oauth::{CB, PW, get_code, register, token_req, web_client};

fn start(url: &str, key: &str, port: u16) -> Child {
    let mut cmd = crate::helpers::bare_command();
    cmd.env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_MASTER_KEY", key)
        .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_ISSUER", format!("http://127.0.0.1:{port}"))
        .env("PORTCULLIS_LOG", "error")
        .env("PORTCULLIS_LOGIN_IP_MAX_ATTEMPTS", "1000000")
        // A client that lost the answer to its last refresh retries with the
        // previous token: the grace period covers the restart.
        .env("PORTCULLIS_REFRESH_REUSE_GRACE_SECS", "120")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) -> Duration {
    let t = Instant::now();
    let http = reqwest::Client::new();
    while t.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status() == 200
        {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not ready after 30 s");
}

#[tokio::test]
async fn a_sigkill_during_logins_and_refreshes_loses_no_acknowledged_write() {
    // Set-up in process: users, a client, and one refresh family per worker.
    let app = spawn_app().await;
    // A refresh whose response the kill swallowed leaves the client holding
    // the rotated-out token: the client opts in to a grace (strict rotation
    // would rightly treat that token's return as a replay).
    let spec = portcullis::admin::clients::ClientSpec { refresh_grace_secs: Some(30), ..web_client("webapp") };
    let secret = register(&app, spec).await.unwrap();
    let mut families = Vec::new();
    for i in 0..4 {
        let user = format!("crash-{i}");
        app.create_user(&user, PW, &[]).await;
        let (code, verifier) = get_code(&app, &app.browser(), "webapp", &user, "").await;
        let (_, t, _) = token_req(
            &app,
            Some(("webapp", &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CB),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        families.push(Arc::new(Mutex::new(t["refresh_token"].as_str().unwrap().to_owned())));
    }

    // A service client that registers users through the admin API of the
    // binary (its issuer is the binary's address).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin_aud = format!("http://127.0.0.1:{port}/admin");
    let _ = portcullis::admin::roles::add(&app.state, &portcullis::admin::Actor::cli(), "users:write", None).await;
    let ops_secret = register(
        &app,
        portcullis::admin::clients::ClientSpec {
            client_id: "ops".into(),
            grants: vec!["client_credentials".into()],
            roles: vec!["users:write".into()],
            resources: vec![admin_aud.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let setup_sessions: u64 = {
        use sea_orm::{EntityTrait, PaginatorTrait};
        portcullis::storage::entities::session::Entity::find().count(&app.state.db).await.unwrap()
    };

    // The load, against the real binary.
    let mut server = start(&app.db.url, &app.db.master_key, port);
    wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let stop = Arc::new(AtomicBool::new(false));
    let logins_acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for fam in &families {
        let (fam, stop, base, secret) = (fam.clone(), stop.clone(), base.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let current = fam.lock().await.clone();
                let Ok(r) = http
                    .post(format!("{base}/token"))
                    .basic_auth("webapp", Some(&secret))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", current.as_str())])
                    .send()
                    .await
                else {
                    break;
                };
                let Ok(v) = r.json::<serde_json::Value>().await else { break };
                // Acknowledged: the client now holds the successor.
                if let Some(next) = v["refresh_token"].as_str() {
                    *fam.lock().await = next.to_owned();
                }
            }
        }));
    }
    // Registrations over the admin API: every 201 is an acknowledged user.
    let registered = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (stop, base, registered, aud, secret) =
            (stop.clone(), base.clone(), registered.clone(), admin_aud.clone(), ops_secret.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let t: serde_json::Value = http
                .post(format!("{base}/token"))
                .basic_auth("ops", Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("resource", aud.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = t["access_token"].as_str().unwrap().to_owned();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("registered-{n}");
                let Ok(r) = http
                    .post(format!("{base}/admin/api/v1/users"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "username": name, "email": format!("{name}@example.com") }))
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == 201 {
                    registered.lock().await.push(name);
                }
            }
        }));
    }
    for i in 0..2 {
        let (stop, base, acked) = (stop.clone(), base.clone(), logins_acked.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let b = reqwest::Client::builder()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let Ok(page) = b.get(format!("{base}/login")).send().await else { break };
                let Ok(html) = page.text().await else { break };
                let user = format!("crash-{i}");
                let r = b
                    .post(format!("{base}/login"))
                    .form(&[("csrf", csrf_in(&html).as_str()), ("username", &user), ("password", PW)])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 303 => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let acked = logins_acked.load(Ordering::Relaxed);
    assert!(acked > 0, "the load did log people in");
    let registered = registered.lock().await.clone();
    assert!(!registered.is_empty(), "the load did register users");

    let mut server = start(&app.db.url, &app.db.master_key, port);
    let ready = wait_ready(port).await;
    println!(
        "ready again after {ready:?} ({acked} logins and {} registrations acknowledged before the kill)",
        registered.len()
    );
    assert!(ready < Duration::from_secs(10), "restart took {ready:?}");

    // Every acknowledged login left its session.
    use sea_orm::{EntityTrait, PaginatorTrait};
    let sessions = portcullis::storage::entities::session::Entity::find().count(&app.state.db).await.unwrap();
    assert!(
        sessions >= setup_sessions + acked,
        "{sessions} sessions for {setup_sessions} + {acked} acknowledged logins"
    );
    // Every acknowledged registration is there, whole (user row and audit record).
    for name in &registered {
        let u = portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), name).await;
        assert!(u.is_ok_and(|u| u.email.as_deref() == Some(format!("{name}@example.com").as_str())), "{name} lost");
    }
    // Every family continues from the last token its client saw.
    let http = reqwest::Client::new();
    for fam in &families {
        let token = fam.lock().await.clone();
        let r = http
            .post(format!("{base}/token"))
            .basic_auth("webapp", Some(&secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(status, 200, "a family was left unusable: {}", r.text().await.unwrap());
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
