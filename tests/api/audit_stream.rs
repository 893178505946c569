//! The audit stream (issue #19, part 2): every committed audit record
//! reaches a file sink and an HMAC-signed webhook, in chain order, across a
//! SIGKILL of the server in the middle of logins and admin changes; the file
//! gets each record exactly once, the webhook at least once (a repeat only
//! of the record in flight at the kill); a failing webhook is retried, then
//! counted as a dead letter in /metrics; filters by event type hold.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis::storage::audit_chain::{self, Verdict};
use portcullis::storage::entities::audit_event;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, csrf_in, spawn_app};
use crate::oauth::PW;

const HOOK_SECRET: &str = "a-webhook-secret-of-some-length";

/// One request the receiver got: its headers (lower-case) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 receiver: answers 503 to the first `fail_first`
/// requests, 200 after; keeps every request that got a 200.
async fn receiver(fail_first: usize) -> (u16, Arc<Mutex<Vec<Received>>>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let (got2, seen2) = (got.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (got, seen) = (got2.clone(), seen2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // The head …
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    // … then the body.
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                    buf.drain(..head_end + len);
                    let status = if seen.fetch_add(1, Ordering::SeqCst) < fail_first {
                        "503 Service Unavailable"
                    } else {
                        got.lock().unwrap().push(Received { headers, body });
                        "200 OK"
                    };
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got, seen)
}

fn start(app: &TestApp, port: u16, config: &std::path::Path) -> Child {
    let mut cmd = crate::helpers::bare_command();
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .env("PORTCULLIS_DATABASE_URL", &app.db.url)
        .env("PORTCULLIS_MASTER_KEY", &app.db.master_key)
        .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_ISSUER", format!("http://127.0.0.1:{port}"))
        .env("PORTCULLIS_LOG", "error")
        .env("PORTCULLIS_LOGIN_IP_MAX_ATTEMPTS", "1000000")
        .env("AUDIT_HOOK_SECRET", HOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not ready after 30 s");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The independent check of a webhook signature: HMAC-SHA-256 over
/// "<t>.<body>" with the shared secret.
fn signed_right(r: &Received) -> bool {
    let Some(sig) = r.header("portcullis-signature") else { return false };
    let Some((t, v1)) = sig.split_once(',').and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HOOK_SECRET.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{t}.{}", r.body).as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

/// Waits until every sink's position has reached the chain's head.
async fn wait_delivered(app: &TestApp, sinks: &[&str]) -> i64 {
    use portcullis::storage::entities::audit_sink;
    let t = Instant::now();
    loop {
        let head = audit_chain::head(&app.state.db).await.unwrap();
        let unsealed =
            audit_event::Entity::find().all(&app.state.db).await.unwrap().iter().filter(|r| r.seq.is_none()).count();
        let rows = audit_sink::Entity::find().all(&app.state.db).await.unwrap();
        let done = sinks.iter().all(|s| rows.iter().any(|r| r.name == *s && r.delivered_seq == head.seq));
        if done && unsealed == 0 && head.seq > 0 {
            return head.seq;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "not delivered: head {head:?}, sinks {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_committed_record_reaches_the_file_and_the_webhook_across_a_sigkill() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_user(&format!("s{i}"), PW, &[]).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (hook_port, got, _) = receiver(0).await;
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            r#"audit_seal_interval_ms = 50
[[audit_sinks]]
name = "file"
kind = "file"
path = "{}"
[[audit_sinks]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/audit"
secret_env = "AUDIT_HOOK_SECRET"
"#,
            file.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(&app, port, &config);
    wait_ready(port).await;

    // Load: logins over HTTP, role changes through the CLI (their own
    // processes, writing to the same database).
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (stop, base) = (stop.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let b = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none());
                let b = b.build().unwrap();
                let Ok(page) = b.get(format!("{base}/login")).send().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(html) = page.text().await else { continue };
                let form = [("csrf", csrf_in(&html)), ("username", format!("s{i}")), ("password", PW.to_owned())];
                let _ = b.post(format!("{base}/login")).form(&form).send().await;
            }
        }));
    }
    {
        let (stop, url, key) = (stop.clone(), app.db.url.clone(), app.db.master_key.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (url, key) = (url.clone(), key.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    let mut cmd = crate::helpers::bare_command();
                    cmd.env("PORTCULLIS_DATABASE_URL", url).env("PORTCULLIS_MASTER_KEY", key);
                    cmd.args(["role", "add", &format!("role-{n}")]).stdout(Stdio::null()).stderr(Stdio::null());
                    cmd.status()
                })
                .await;
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = start(&app, port, &config);
    wait_ready(port).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let head = wait_delivered(&app, &["file", "hook"]).await;
    let _ = server.kill();
    server.wait().unwrap();

    // The database's chain: intact, and the reference for both sinks.
    let key = app.state.master_key.audit_key();
    assert!(matches!(audit_chain::verify(&app.state.db, key).await.unwrap(), Verdict::Intact { .. }));
    let records = audit_event::Entity::find().order_by_asc(audit_event::Column::Seq).all(&app.state.db).await.unwrap();
    let hashes: Vec<(i64, String)> = records.iter().map(|r| (r.seq.unwrap(), r.hash.clone().unwrap())).collect();
    assert_eq!(hashes.len() as i64, head);
    assert!(records.iter().any(|r| r.event_type == "login.password"), "logins were audited");
    assert!(records.iter().any(|r| r.event_type == "role.created"), "admin changes were audited");

    // The file: every record exactly once, in order, the same hashes.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let on_file: Vec<(i64, String)> =
        lines.iter().map(|v| (v["seq"].as_i64().unwrap(), v["hash"].as_str().unwrap().to_owned())).collect();
    assert_eq!(on_file, hashes, "the file holds the chain, each record once, in order");
    assert!(lines.iter().all(|v| v["schema"] == "portcullis.audit.v1"));

    // The webhook: signed, in order, each record; a repeat only of the
    // record in flight at the kill.
    let got = got.lock().unwrap().clone();
    assert!(got.iter().all(signed_right), "every request carries a valid signature");
    let seqs: Vec<i64> = got
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(r.header("portcullis-audit-seq"), Some(v["seq"].to_string().as_str()));
            v["seq"].as_i64().unwrap()
        })
        .collect();
    let mut deduped = seqs.clone();
    deduped.dedup();
    println!("{head} records; {} webhook requests", seqs.len());
    assert_eq!(deduped, (1..=head).collect::<Vec<_>>(), "in order, none missing");
    assert!(seqs.len() - deduped.len() <= 1, "at most the one in flight repeated: {seqs:?}");
}

/// A file sink whose file is ahead of the stored position (a kill between
/// the write and the position's update) or ends in a torn line (a kill in
/// the middle of a write) resumes after its last whole line: no record
/// twice, none lost, the torn line gone.
#[tokio::test]
async fn a_file_sink_resumes_after_its_last_whole_line() {
    let app = spawn_app().await;
    for i in 0..3 {
        let e = portcullis::storage::AuditEvent::new("test.event", "success").detail(serde_json::json!({ "i": i }));
        portcullis::storage::record_audit(&app.state.db, e, app.state.clock.now()).await.unwrap();
    }
    let key = app.state.master_key.audit_key();
    audit_chain::seal(&app.state.db, key).await.unwrap();
    let first: Vec<audit_event::Model> =
        audit_event::Entity::find().order_by_asc(audit_event::Column::Seq).all(&app.state.db).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    // Records 1 and 2 made it to the file; 3 was cut in the middle.
    let mut text = String::new();
    for r in &first[..2] {
        text.push_str(&portcullis::audit::to_json(r).to_string());
        text.push('\n');
    }
    text.push_str(&portcullis::audit::to_json(&first[2]).to_string()[..20]);
    std::fs::write(&file, text).unwrap();
    let config = dir.path().join("portcullis.toml");
    let sink = format!("[[audit_sinks]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n", file.display());
    std::fs::write(&config, format!("audit_seal_interval_ms = 50\n{sink}")).unwrap();
    let port = free_port();
    let mut server = start(&app, port, &config);
    wait_ready(port).await;
    let head = wait_delivered(&app, &["file"]).await;
    let _ = server.kill();
    server.wait().unwrap();
    let seqs: Vec<i64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("whole lines only")["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
}

/// A webhook that refuses is retried with backoff; one that keeps refusing
/// costs a dead letter (in /metrics) and the stream moves on. A filter sends
/// only the event types asked for, and the position still advances.
#[tokio::test]
async fn a_refusing_webhook_is_retried_then_dead_lettered_and_filters_hold() {
    let app = spawn_app().await;
    let (hook_port, got, seen) = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            r#"audit_seal_interval_ms = 50
[[audit_sinks]]
name = "roles"
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/audit"
secret_env = "AUDIT_HOOK_SECRET"
events = ["role.*"]
max_attempts = 2
"#
        ),
    )
    .unwrap();
    // Written before the server starts: a user (filtered out) and two roles.
    app.create_user("f0", PW, &[]).await;
    assert!(app.db.cli(&["role", "add", "first"], None).status.success());
    assert!(app.db.cli(&["role", "add", "second"], None).status.success());
    let port = free_port();
    let mut server = start(&app, port, &config);
    wait_ready(port).await;
    let head = wait_delivered(&app, &["roles"]).await;
    // The gauges are set by the deliverer after it stores its position:
    // read them once they have caught up (or fail below after 10 s).
    let mut metrics = String::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
        if metrics.contains(r#"portcullis_audit_stream_dead_letters{sink="roles"} 1"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Two refusals: the first role record was tried twice and given up.
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    let dead_seq = audit_event::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.event_type == "role.created" && r.detail.contains("\"first\""))
        .and_then(|r| r.seq)
        .unwrap();
    // The operator sends the dead letter again: it arrives.
    let env = [("AUDIT_HOOK_SECRET".to_owned(), HOOK_SECRET.to_owned())];
    let args = ["--config", config.to_str().unwrap(), "audit", "resend", "--sink", "roles", "--from"];
    let o = app.db.cli_env(&[&args[..], &[dead_seq.to_string().as_str()]].concat(), None, &env);
    assert!(o.status.success(), "{}", crate::helpers::stderr(&o));
    let o = app.db.cli_env(&[&args[..], &["999999"]].concat(), None, &env);
    crate::helpers::assert_clean_failure(&o, "the records kept are");
    let t = Instant::now();
    while got.lock().unwrap().len() < 3 && t.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    server.wait().unwrap();
    let resent: Vec<Value> = got.lock().unwrap()[1..].iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    assert_eq!(resent[0]["seq"], dead_seq, "the dead letter, now delivered: {resent:?}");
    assert_eq!(resent[0]["detail"]["role"], "first");
    let got = got.lock().unwrap()[..1].to_vec();
    let bodies: Vec<Value> = got.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["event_type"], "role.created");
    assert_eq!(bodies[0]["detail"]["role"], "second", "{}", bodies[0]);
    assert!(head > 2, "the user's records were skipped by the filter, the position moved past them");
    assert!(metrics.contains(r#"portcullis_audit_stream_dead_letters{sink="roles"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"portcullis_audit_stream_lag{sink="roles"} 0"#), "{metrics}");
}

/// Sinks are checked at start: a secret written inline, a webhook over
/// plain http to another host, a file sink without a path are refused with
/// the reason, before anything runs.
#[tokio::test]
async fn bad_sink_settings_are_refused_at_start() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[audit_sinks]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"https://siem.example/h\"\nsecret = \"inline-secret-value\"\n",
            "secret",
        ),
        (
            "[[audit_sinks]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://siem.example/h\"\nsecret_env = \"AUDIT_HOOK_SECRET\"\n",
            "https",
        ),
        ("[[audit_sinks]]\nname = \"f\"\nkind = \"file\"\n", "needs path"),
        (
            "[[audit_sinks]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"https://siem.example/h\"\nsecret_env = \"NOT_SET_ANYWHERE_1234\"\n",
            "NOT_SET_ANYWHERE_1234 is not set",
        ),
    ];
    for (i, (toml, reason)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        let env = [("AUDIT_HOOK_SECRET".to_owned(), HOOK_SECRET.to_owned())];
        let o = app.db.cli_env(&["--config", config.to_str().unwrap(), "migrate"], None, &env);
        crate::helpers::assert_clean_failure(&o, reason);
    }
}

/// One deliverer per sink at a time: a live lease is not taken; a process
/// of the same instance (host and address) takes it back at once; the
/// holder that lost it cannot move the position any more (it stops).
#[tokio::test]
async fn a_sink_lease_has_one_holder_and_a_lost_lease_stops_its_deliverer() {
    use portcullis::storage::audit_sinks::{advance, ensure, lease};
    let app = spawn_app().await;
    let db = &app.state.db;
    ensure(db, "s").await.unwrap();
    let now = app.state.clock.now().timestamp_millis();
    let a = lease(db, "s", "host-a:1:x", "host-a:1:", now, now + 30_000).await.unwrap();
    assert!(a.is_some());
    assert!(lease(db, "s", "host-b:1:y", "host-b:1:", now, now + 30_000).await.unwrap().is_none(), "held");
    assert!(advance(db, "s", "host-a:1:x", 5, 0, now + 30_000).await.unwrap());
    // A restarted process of instance a takes its instance's lease back.
    assert!(lease(db, "s", "host-a:1:z", "host-a:1:", now, now + 30_000).await.unwrap().is_some());
    assert!(!advance(db, "s", "host-a:1:x", 9, 0, now + 30_000).await.unwrap(), "the old process lost it");
    // Run out: anyone may take it.
    let later = now + 31_000;
    assert!(lease(db, "s", "host-b:1:y", "host-b:1:", later, later + 30_000).await.unwrap().is_some());
    assert!(!advance(db, "s", "host-a:1:z", 9, 0, later).await.unwrap());
    let row = portcullis::storage::entities::audit_sink::Entity::find_by_id("s").one(db).await.unwrap().unwrap();
    assert_eq!(row.delivered_seq, 5, "only the holder moved it");
}

/// A webhook secret that cannot be read stops the stream instead of giving
/// records up: no dead letter, the position waits; with the secret back,
/// everything is delivered.
#[tokio::test]
async fn an_unreadable_webhook_secret_stops_the_stream_without_losing_records() {
    use portcullis::storage::entities::audit_sink;
    let app = spawn_app().await;
    let (hook_port, got, _) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hook-secret");
    std::fs::write(&secret_file, HOOK_SECRET).unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "audit_seal_interval_ms = 50\n[[audit_sinks]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/a\"\nsecret_file = \"{}\"\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut server = start(&app, port, &config);
    wait_ready(port).await;
    wait_delivered(&app, &["hook"]).await;
    std::fs::remove_file(&secret_file).unwrap();
    assert!(app.db.cli(&["role", "add", "while-missing"], None).status.success());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let row = audit_sink::Entity::find_by_id("hook").one(&app.state.db).await.unwrap().unwrap();
    let head = audit_chain::head(&app.state.db).await.unwrap();
    assert!(row.delivered_seq < head.seq, "the stream waits");
    assert_eq!(row.dead_letters, 0, "nothing given up");
    std::fs::write(&secret_file, HOOK_SECRET).unwrap();
    let head = wait_delivered(&app, &["hook"]).await;
    let _ = server.kill();
    server.wait().unwrap();
    let seqs: Vec<i64> = got
        .lock()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
}
