// A load script for the login form: WORKERS browsers (each its own cookie
// jar) log in and out as fast as they can for SECONDS, while a prober measures
// /healthz and the client_credentials token endpoint. Prints logins/s, probe
// latency percentiles, and the server's resident memory (if PID is given).
//
//   BASE=http://127.0.0.1:8080 USERS=64 PASSWORD='…' WORKERS=64 SECONDS=20 \
//   CLIENT=bench SECRET=… PID=$(pidof portcullis) cargo run --release --example login_load
//
// Users are load-0 … load-(USERS-1), all with PASSWORD (see docs/PERFORMANCE.md).
//
// MODE=passkey: each worker first signs in once with the password and adds a
// passkey (the software authenticator of the tests), then signs in
// passwordless in a loop — /login, /login/passkey/start, the assertion,
// /login/passkey/finish — so no argon2 is on the measured path. Needs an
// issuer with a domain name (`http://localhost:PORT`) and USERS ≥ WORKERS
// (one key per worker, so its counter only moves forward).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/softkey.rs"]
mod softkey;

use serde_json::{Value, json};
use softkey::{Ceremony, SoftKey};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_owned())
}

fn csrf_in(html: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let i = html.find(marker)? + marker.len();
    Some(html[i..].split('"').next()?.to_owned())
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn post_json(b: &reqwest::Client, url: String, body: Value) -> Option<Value> {
    b.post(url).json(&body).send().await.ok()?.json().await.ok()
}

/// Signs in with the password and adds a passkey from the account page.
async fn enrol(base: &str, user: &str, password: &str, c: &Ceremony<'_>) -> SoftKey {
    let b = browser();
    let page = b.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&page).unwrap();
    let r = b
        .post(format!("{base}/login"))
        .form(&[("csrf", csrf.as_str()), ("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "password sign-in of {user}");
    let page = b.get(format!("{base}/account")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&page).unwrap();
    let options = post_json(&b, format!("{base}/account/passkeys/start"), json!({ "csrf": csrf })).await.unwrap();
    let (key, response) = SoftKey::register(&options, c);
    let done = post_json(
        &b,
        format!("{base}/account/passkeys/finish"),
        json!({ "csrf": csrf, "name": "load", "credential": response }),
    )
    .await
    .unwrap();
    assert!(done["location"].is_string(), "passkey of {user}: {done}");
    key
}

/// One passwordless sign-in in a fresh browser; whether it succeeded.
async fn passwordless(base: &str, key: &mut SoftKey, c: &Ceremony<'_>) -> Option<bool> {
    let b = browser();
    let page = b.get(format!("{base}/login")).send().await.ok()?.text().await.ok()?;
    let csrf = csrf_in(&page)?;
    let options = post_json(&b, format!("{base}/login/passkey/start"), json!({ "csrf": csrf })).await?;
    let cred = key.assert(&options, c);
    let done =
        post_json(&b, format!("{base}/login/passkey/finish"), json!({ "csrf": csrf, "credential": cred })).await?;
    Some(done["location"] == "/account")
}

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let base = env("BASE", "http://127.0.0.1:8080");
    let users: usize = env("USERS", "64").parse().unwrap();
    let workers: usize = env("WORKERS", "64").parse().unwrap();
    let seconds: u64 = env("SECONDS", "20").parse().unwrap();
    let password = env("PASSWORD", "violet anvil tramline");
    let pid = std::env::var("PID").ok();
    let passkeys = env("MODE", "password") == "passkey";
    let mut keys: Vec<Option<SoftKey>> = Vec::new();
    if passkeys {
        assert!(users >= workers, "MODE=passkey needs USERS >= WORKERS");
        let rp_id = url::Url::parse(&base).unwrap().host_str().unwrap().to_owned();
        let c = Ceremony { origin: &base, rp_id: &rp_id, user_verified: true };
        for w in 0..workers {
            keys.push(Some(enrol(&base, &format!("load-{w}"), &password, &c).await));
        }
        println!("{workers} passkeys added; signing in without a password");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    for w in 0..workers {
        let (base, password, stop, logins, failures) =
            (base.clone(), password.clone(), stop.clone(), logins.clone(), failures.clone());
        let key = keys.get_mut(w).and_then(Option::take);
        tasks.push(tokio::spawn(async move {
            let user = format!("load-{}", w % users);
            if let Some(mut key) = key {
                let rp_id = url::Url::parse(&base).unwrap().host_str().unwrap().to_owned();
                let c = Ceremony { origin: &base, rp_id: &rp_id, user_verified: true };
                while !stop.load(Ordering::Relaxed) {
                    match passwordless(&base, &mut key, &c).await {
                        Some(true) => logins.fetch_add(1, Ordering::Relaxed),
                        _ => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                let b = browser();
                let Ok(page) = b.get(format!("{base}/login")).send().await else { continue };
                let Some(csrf) = csrf_in(&page.text().await.unwrap_or_default()) else { continue };
                let r = b
                    .post(format!("{base}/login"))
                    .form(&[("csrf", csrf.as_str()), ("username", &user), ("password", &password)])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 303 => logins.fetch_add(1, Ordering::Relaxed),
                    _ => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    // The prober: /healthz and the token endpoint, one request at a time.
    let client = std::env::var("CLIENT").ok().zip(std::env::var("SECRET").ok());
    let (base2, stop2) = (base.clone(), stop.clone());
    let prober = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (mut health, mut token) = (Vec::new(), Vec::new());
        while !stop2.load(Ordering::Relaxed) {
            let t = Instant::now();
            if http.get(format!("{base2}/healthz")).send().await.is_ok() {
                health.push(t.elapsed());
            }
            if let Some((id, secret)) = &client {
                let t = Instant::now();
                if http
                    .post(format!("{base2}/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .is_ok()
                {
                    token.push(t.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (health, token)
    });

    let start = Instant::now();
    let cpu0 = pid.as_deref().and_then(cpu_secs);
    let mut peak_rss = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(r) = pid.as_deref().and_then(rss_kib) {
            peak_rss = peak_rss.max(r);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let (mut health, mut token) = prober.await.unwrap();
    let n = logins.load(Ordering::Relaxed);
    println!(
        "logins: {n} in {elapsed:.1} s = {:.1}/s ({} failed)",
        n as f64 / elapsed,
        failures.load(Ordering::Relaxed)
    );
    println!("healthz: n={} p50={:?} p99={:?}", health.len(), pct(&mut health, 0.5), pct(&mut health, 0.99));
    if !token.is_empty() {
        println!("token:   n={} p50={:?} p99={:?}", token.len(), pct(&mut token, 0.5), pct(&mut token, 0.99));
    }
    if let Some(p) = pid.as_deref() {
        println!("peak rss: {} KiB", peak_rss);
        if let (Some(a), Some(b)) = (cpu0, cpu_secs(p)) {
            println!("server cpu: {:.1} s = {:.2} ms per login", b - a, (b - a) * 1000.0 / n.max(1) as f64);
        }
    }
}
