//! The operator's tools refuse what would corrupt or mislead (items 7, 13).

use crate::helpers::{TestDb, assert_clean_failure, spawn_app_on, stdout};

/// Item 7: the CLI accepted a wrong master key (or none, silently making a
/// development key beside a populated database) and exited 0; after `keys
/// rotate` with it the server no longer started with its real key.
#[tokio::test]
async fn the_cli_refuses_a_master_key_that_is_not_the_databases() {
    let db = TestDb::new().await;
    let out = db.cli(&["user", "add", "ann", "--password-stdin"], Some("violet anvil tramline\n"));
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let wrong = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let with_wrong = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("PORTCULLIS_DATABASE_URL", &db.url).env("PORTCULLIS_MASTER_KEY", &wrong).args(args);
        cmd.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    };
    for args in [vec!["keys", "rotate"], vec!["user", "list"], vec!["user", "totp-import", "ann", "--secret-stdin"]] {
        let out = with_wrong(&args, Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n"));
        assert_clean_failure(&out, "master key does not match");
    }
    // No key at all on a database with data: no development key is made up.
    if db.url.starts_with("sqlite://") {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.env("PORTCULLIS_DATABASE_URL", &db.url).args(["user", "list"]).output().unwrap();
        assert_clean_failure(&out, "already holds data");
        let file = db.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned() + ".master.key";
        assert!(!std::path::Path::new(&file).exists(), "no key file was generated");
    }
    // The real key still opens everything: the server starts and serves.
    let app = spawn_app_on(db).await;
    assert_eq!(reqwest::get(app.url("/readyz")).await.unwrap().status(), 200);
    let out = app.db.cli(&["user", "list", "--json"], None);
    assert!(stdout(&out).contains("ann"));
}

/// Item 13: role descriptions took ESC, CR, LF and BEL, printed raw by
/// `role list` (terminal injection in an operator's shell).
#[tokio::test]
async fn role_descriptions_refuse_control_characters() {
    let db = TestDb::new().await;
    for bad in ["\u{1b}[2J\u{1b}[31mpwned", "line\rover", "two\nlines", "bell\u{7}"] {
        let out = db.cli(&["role", "add", "ops", "--description", bad], None);
        assert_clean_failure(&out, "control characters");
    }
    let out = db.cli(&["role", "list", "--json"], None);
    assert!(!stdout(&out).contains("ops"), "nothing was written");
    assert!(db.cli(&["role", "add", "ops", "--description", "Operations team"], None).status.success());
}
