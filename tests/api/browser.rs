//! End-to-end in Debian's headless Chromium (tests/browser, playwright-core).
//! Needs `chromium` and `npm ci --prefix tests/browser`; without them the test
//! says so and passes, unless PORTCULLIS_BROWSER_TESTS=1 (as in CI) makes them
//! mandatory.

use std::path::Path;

use portcullis::clock::Clock;

use crate::helpers::{TestDb, spawn_app, spawn_app_on_clock};

fn browser_ready() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("no Chromium at {chromium} (apt-get install chromium)"));
    }
    if !Path::new("tests/browser/node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    Ok(())
}

async fn run_script(script: &str, base: &str, user: &str, password: &str) {
    if let Err(why) = browser_ready() {
        assert!(std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"), "browser test required: {why}");
        eprintln!("SKIPPED browser test {script}: {why}");
        return;
    }
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("--test").arg(format!("tests/browser/{script}"));
    cmd.env("BASE_URL", base).env("PC_USER", user).env("PC_PASSWORD", password);
    let out = cmd.output().await.expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("# pass 1"), "{stdout}");
}

#[tokio::test]
async fn a_person_logs_in_and_out_in_a_real_browser() {
    let app = spawn_app().await;
    app.create_user("rosa", "violet anvil tramline", &[]).await;
    run_script("login.test.mjs", &app.address, "rosa", "violet anvil tramline").await;
}

#[tokio::test]
async fn a_person_enrols_totp_and_logs_in_with_a_code_in_a_real_browser() {
    let app = spawn_app_on_clock(TestDb::new().await, Clock::System, |_| {}).await;
    app.create_user("sven", "violet anvil tramline", &[]).await;
    run_script("mfa.test.mjs", &app.address, "sven", "violet anvil tramline").await;
}
