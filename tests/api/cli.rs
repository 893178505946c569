use portcullis::storage::entities::{audit_event, client, password_credential, user};
use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::{TestDb, assert_clean_failure, stderr, stdout};

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "command failed: {}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[tokio::test]
async fn client_add_prints_the_secret_once_and_stores_only_its_hash() {
    let db = TestDb::new().await;
    let out = json(&db.cli(
        &["client", "add", "webapp", "--redirect-uri", "https://app.example.com/cb", "--scope", "openid", "--json"],
        None,
    ));
    let secret = out["client_secret"].as_str().expect("a secret").to_owned();
    assert!(secret.len() >= 43, "at least 256 bits, base64url");
    assert_eq!(out["client_id"], "webapp");

    // The row holds a keyed hash, never the secret.
    let conn = Database::connect(&db.url).await.unwrap();
    let row = client::Entity::find_by_id("webapp").one(&conn).await.unwrap().unwrap();
    let stored = row.secret_hash.clone().unwrap();
    assert!(stored.starts_with("hmac-sha256$"));
    assert!(!stored.contains(&secret));
    let (state, _) = portcullis::state::AppState::build(db.settings(), Default::default()).await.unwrap();
    assert!(state.master_key.hasher().verify(&secret, &stored));

    // `show` and `list` never print it again.
    let show = db.cli(&["client", "show", "webapp", "--json"], None);
    assert!(!stdout(&show).contains(&secret));
    assert_eq!(json(&show)["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
    let list = db.cli(&["client", "list", "--json"], None);
    assert!(!stdout(&list).contains(&secret));

    // Rotation replaces it: the old secret no longer verifies.
    let rotated = json(&db.cli(&["client", "rotate-secret", "webapp", "--json"], None));
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let row = client::Entity::find_by_id("webapp").one(&conn).await.unwrap().unwrap();
    let stored = row.secret_hash.unwrap();
    assert!(!state.master_key.hasher().verify(&secret, &stored));
    assert!(state.master_key.hasher().verify(new_secret, &stored));
}

#[tokio::test]
async fn a_service_client_needs_no_redirect_uri_and_a_public_client_has_no_secret() {
    let db = TestDb::new().await;
    let out = json(
        &db.cli(&["client", "add", "bench", "--grant", "client_credentials", "--scope", "api:read", "--json"], None),
    );
    assert!(out["client_secret"].is_string());
    assert_eq!(out["client"]["grant_types"], serde_json::json!(["client_credentials"]));
    let out = json(
        &db.cli(&["client", "add", "spa", "--public", "--redirect-uri", "http://127.0.0.1:3000/cb", "--json"], None),
    );
    assert!(out["client_secret"].is_null());
    assert_eq!(out["client"]["pkce"], "required");
}

#[tokio::test]
async fn malformed_redirect_uris_are_refused_and_nothing_is_written() {
    let db = TestDb::new().await;
    for (uri, why) in [
        ("/relative/cb", "not an absolute URI"),
        ("https://app.example.com/cb#frag", "fragment"),
        ("http://app.example.com/cb", "plain http on a non-loopback host"),
        ("javascript:alert(1)", "scheme"),
    ] {
        let o = db.cli(&["client", "add", "bad", "--redirect-uri", uri], None);
        assert_clean_failure(&o, why);
    }
    let o = db.cli(&["client", "add", "bad"], None);
    assert_clean_failure(&o, "at least one --redirect-uri");
    let o = db.cli(&["client", "add", "bad", "--public", "--grant", "client_credentials"], None);
    assert_clean_failure(&o, "public client cannot use client_credentials");
    let o = db.cli(&["client", "add", "bad", "--redirect-uri", "https://a.example/cb", "--role", "nope"], None);
    assert_clean_failure(&o, "role \"nope\" does not exist");
    let o = db.cli(&["client", "add", "bad", "--redirect-uri", "https://a.example/cb", "--id-token-alg", "none"], None);
    assert_clean_failure(&o, "not one of RS256, ES256, EdDSA");
    let conn = Database::connect(&db.url).await.unwrap();
    assert_eq!(client::Entity::find().count(&conn).await.unwrap(), 0);
}

#[tokio::test]
async fn users_are_unique_case_insensitively_and_unknown_roles_write_nothing() {
    let db = TestDb::new().await;
    let out =
        json(&db.cli(&["user", "add", "Alice", "--email", "alice@example.com", "--role", "admin", "--json"], None));
    assert_eq!(out["username"], "Alice");
    assert_eq!(out["roles"], serde_json::json!(["admin"]));
    // Made without a password: said, with the way to give one.
    let o = db.cli(&["user", "add", "dora"], None);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("dora has no password and cannot sign in yet"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = db.cli(&["user", "add", "eve", "--password-stdin"], Some("a long enough passphrase\n"));
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("no password"));
    let id = out["id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID, not the username");

    assert_clean_failure(&db.cli(&["user", "add", "alice"], None), "user \"alice\" already exists");
    assert_clean_failure(&db.cli(&["user", "add", "bob", "--role", "ghost"], None), "role \"ghost\" does not exist");
    assert_clean_failure(&db.cli(&["user", "add", "<script>"], None), "username");
    assert_clean_failure(&db.cli(&["user", "add", "carol", "--email", "nope"], None), "email");

    let conn = Database::connect(&db.url).await.unwrap();
    assert_eq!(user::Entity::find().count(&conn).await.unwrap(), 3, "alice, dora, eve: bob was not half-created");
    let shown = json(&db.cli(&["user", "show", "ALICE", "--json"], None));
    assert_eq!(shown["id"], id);
}

#[tokio::test]
async fn a_password_from_stdin_is_stored_as_argon2id_only() {
    let db = TestDb::new().await;
    let pw = "correct horse battery staple";
    let out = json(&db.cli(&["user", "add", "dave", "--password-stdin", "--json"], Some(&format!("{pw}\n"))));
    assert_eq!(out["has_password"], true);
    let conn = Database::connect(&db.url).await.unwrap();
    let cred = password_credential::Entity::find().one(&conn).await.unwrap().unwrap();
    assert!(cred.phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", cred.phc);
    assert!(!cred.phc.contains(pw));

    // The policy applies: too short is refused, nothing changes.
    let o = db.cli(&["user", "set-password", "dave", "--password-stdin"], Some("short\n"));
    assert_clean_failure(&o, "at least 8 characters");
    let again = password_credential::Entity::find().one(&conn).await.unwrap().unwrap();
    assert_eq!(again.phc, cred.phc);

    let o = db.cli(&["user", "set-password", "dave", "--password-stdin"], Some("another fine passphrase\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let changed = password_credential::Entity::find().one(&conn).await.unwrap().unwrap();
    assert_ne!(changed.phc, cred.phc);
}

#[tokio::test]
async fn roles_attributes_and_disabling_are_recorded_in_the_audit_log() {
    let db = TestDb::new().await;
    json(&db.cli(&["role", "add", "billing", "--description", "Billing team", "--json"], None));
    assert_clean_failure(&db.cli(&["role", "add", "billing"], None), "role \"billing\" already exists");
    let roles = json(&db.cli(&["role", "list", "--json"], None));
    let names: Vec<&str> = roles.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "billing"]);

    json(&db.cli(&["user", "add", "erin", "--json"], None));
    let u = json(&db.cli(&["user", "grant", "erin", "billing", "--json"], None));
    assert_eq!(u["roles"], serde_json::json!(["billing"]));
    let u = json(&db.cli(&["user", "set-attr", "erin", "department", "finance", "--json"], None));
    assert_eq!(u["attributes"]["department"], "finance");
    let u = json(&db.cli(&["user", "disable", "erin", "--json"], None));
    assert_eq!(u["disabled"], true);
    let u = json(&db.cli(&["user", "revoke", "erin", "billing", "--json"], None));
    assert_eq!(u["roles"], serde_json::json!([]));
    assert_clean_failure(&db.cli(&["user", "grant", "nobody", "billing"], None), "user \"nobody\" does not exist");

    let conn = Database::connect(&db.url).await.unwrap();
    let events: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.starts_with("user."))
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            assert!(e.actor.as_deref().unwrap_or_default().starts_with("cli:"));
            e.event_type
        })
        .collect();
    for expected in ["user.created", "user.role_granted", "user.attribute_set", "user.disabled", "user.role_revoked"] {
        assert!(events.iter().any(|e| e == expected), "{expected} missing from {events:?}");
    }
}

#[tokio::test]
async fn keys_rotate_adds_active_keys_and_retires_the_old_ones() {
    let db = TestDb::new().await;
    // The database's first use made one key per algorithm; each rotation
    // adds three active ones and retires the three before.
    let first = json(&db.cli(&["keys", "rotate", "--json"], None));
    assert_eq!(first.as_array().unwrap().len(), 6);
    let second = json(&db.cli(&["keys", "rotate", "--json"], None));
    let keys = second.as_array().unwrap();
    assert_eq!(keys.len(), 9);
    let active: Vec<&str> = keys.iter().filter(|k| k["active"] == true).map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(active.len(), 3);
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(active.contains(&alg));
    }
    let listed = json(&db.cli(&["keys", "list", "--json"], None));
    assert_eq!(listed, second);
    assert!(!stdout(&db.cli(&["keys", "list", "--json"], None)).contains("PRIVATE"));
}

#[tokio::test]
async fn an_unreachable_database_is_a_one_line_error() {
    let db = TestDb::new().await;
    let mut o = db.cli(&["migrate"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // Same binary, a database nobody listens for.
    let mut cmd = crate::helpers::bare_command();
    o = cmd
        .env("PORTCULLIS_DATABASE_URL", "postgres://nobody:secretpw@127.0.0.1:1/nothing")
        .env("PORTCULLIS_MASTER_KEY", &db.master_key)
        .arg("migrate")
        .output()
        .unwrap();
    assert_clean_failure(&o, "cannot connect to the database");
    assert!(!stderr(&o).contains("secretpw"), "the password is redacted");

    // Without a master key, that is said first — before any connection is
    // tried (it would otherwise wait for the database, then report that).
    let mut cmd = crate::helpers::bare_command();
    o = cmd
        .env("PORTCULLIS_DATABASE_URL", "postgres://nobody:secretpw@127.0.0.1:1/nothing")
        .arg("migrate")
        .output()
        .unwrap();
    assert_clean_failure(&o, "PORTCULLIS_MASTER_KEY");
    assert!(!stderr(&o).contains("cannot connect"), "{}", stderr(&o));
    // A malformed key is refused the same way.
    let mut cmd = crate::helpers::bare_command();
    o = cmd
        .env("PORTCULLIS_DATABASE_URL", "postgres://nobody:secretpw@127.0.0.1:1/nothing")
        .env("PORTCULLIS_MASTER_KEY", "not-base64-of-32-bytes")
        .arg("migrate")
        .output()
        .unwrap();
    assert_clean_failure(&o, "base64 of exactly 32 bytes");
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_reason() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "bind = \"127.0.0.1:0\"\nbindd = \"oops\"\n").unwrap();
    let o = db.cli(&["--config", file.to_str().unwrap(), "migrate"], None);
    assert_clean_failure(&o, "bindd");
    let o = db.cli(&["--config", "/nonexistent/p.toml", "migrate"], None);
    assert_clean_failure(&o, "does not exist");

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    let o = cmd
        .env("PORTCULLIS_DATABASE_URL", &db.url)
        .env("PORTCULLIS_MASTER_KEY", &db.master_key)
        .env("PORTCULLIS_ISSUER", "http://id.example.com")
        .arg("migrate")
        .output()
        .unwrap();
    assert_clean_failure(&o, "PORTCULLIS_INSECURE_HTTP");
}

#[tokio::test]
async fn serve_is_the_default_command_and_stops_gracefully_on_sigterm() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = crate::helpers::bare_command();
    let mut child = cmd
        .env("PORTCULLIS_DATABASE_URL", &db.url)
        .env("PORTCULLIS_MASTER_KEY", &db.master_key)
        .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
        .arg("healthcheck")
        .output()
        .unwrap();
    // A client's mistake (401) is no warning of ours: at `warn`, nothing is logged.
    let r = http.get(format!("http://127.0.0.1:{port}/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut log = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let status = child.wait().unwrap();
    assert!(!log.contains("/userinfo") && !log.contains("otel.status_code"), "{log}");
    assert!(ready, "the server never became ready");
    assert!(probe.status.success(), "healthcheck: {}", stderr(&probe));
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    // First start generated the signing keys.
    let conn = Database::connect(&db.url).await.unwrap();
    let n = portcullis::storage::entities::signing_key::Entity::find().count(&conn).await.unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn client_access_policies_are_set_from_a_file_and_bad_ones_are_refused_with_the_field_named() {
    let db = TestDb::new().await;
    let o = db.cli(&["client", "add", "ledger", "--redirect-uri", "https://ledger.example.com/cb"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"networks": ["10.0.0.0/33"]}"#).unwrap();
    let o = db.cli(&["client", "set-policy", "ledger", "--policy", bad.to_str().unwrap()], None);
    assert_clean_failure(&o, "access_policy.networks");
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"roles_any": ["admin"], "networks": ["10.1.2.0/24"], "mfa": true}"#).unwrap();
    let o = db.cli(&["--json", "client", "set-policy", "ledger", "--policy", good.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["access_policy"]["networks"][0], "10.1.2.0/24");
    let o = db.cli(&["--json", "client", "set-policy", "ledger", "--clear"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["access_policy"], serde_json::Value::Null);
    let o = db.cli(&["client", "set-policy", "ledger"], None);
    assert_eq!(o.status.code(), Some(2), "a malformed command line: neither --policy nor --clear");
}

/// The binary with none of this environment's `PORTCULLIS_*` settings.
/// `portcullis backup FILE` (#19, in part): an online, consistent copy of an
/// SQLite database, never over an existing file, without the master key; a
/// server opened on the copy with the same key has the same users and the
/// same signing keys (so tokens signed before still verify). On PostgreSQL
/// the command says to use pg_dump.
#[tokio::test]
async fn a_backup_serves_the_same_users_and_keys_and_never_overwrites() {
    let app = crate::helpers::spawn_app().await;
    app.create_user("bea", "violet anvil tramline", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let path = file.to_str().unwrap();
    let o = app.db.cli(&["backup", path], None);
    if app.db.url.starts_with("postgres") {
        assert_clean_failure(&o, "pg_dump");
        return;
    }
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("the master key is not in it"), "{}", stdout(&o));
    let o = app.db.cli(&["backup", path], None);
    assert_clean_failure(&o, "exists already");
    // The key is not in the copy: its bytes do not appear there.
    let raw = std::fs::read(&file).unwrap();
    let key = app.db.master_key.as_bytes();
    assert!(!raw.windows(key.len()).any(|w| w == key));
    // A server on the copy, with the same master key.
    let settings = portcullis::config::Settings::for_test(&format!("sqlite://{path}?mode=rw"), &app.db.master_key);
    let (copy, _) = portcullis::state::AppState::build(settings, portcullis::clock::Clock::System).await.unwrap();
    let users = user::Entity::find().all(&copy.db).await.unwrap();
    assert!(users.iter().any(|u| u.username == "bea"));
    let cli = portcullis::admin::Actor::cli();
    let kids = |v: Vec<portcullis::tokens::keys::KeyView>| v.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    let before = kids(portcullis::admin::keys::list(&app.state, &cli).await.unwrap());
    let after = kids(portcullis::admin::keys::list(&copy, &cli).await.unwrap());
    assert!(!before.is_empty());
    assert_eq!(before, after, "the same signing keys, readable with the same master key");
}

/// `portcullis restore FILE` (issue #19, part 4): a backup restored into an
/// empty database serves the same users, clients and keys — a token signed
/// before the backup is still active at a server on the restored database.
/// It refuses a database with data, a wrong master key (nothing written),
/// and on PostgreSQL names pg_restore.
#[tokio::test]
async fn a_restored_backup_serves_the_same_users_clients_and_keys() {
    use crate::oauth::{register, token_req};
    let app = crate::helpers::spawn_app().await;
    app.create_user("rhea", "violet anvil tramline", &[]).await;
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "svc".into(),
        grants: vec!["client_credentials".into()],
        ..Default::default()
    };
    let secret = register(&app, spec).await.unwrap();
    let (s, t, _) = token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);
    let token = t["access_token"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let o = app.db.cli(&["backup", file.to_str().unwrap()], None);
    if app.db.url.starts_with("postgres") {
        assert_clean_failure(&app.db.cli(&["restore", "/nonexistent"], None), "pg_restore");
        return;
    }
    assert!(o.status.success(), "{}", stderr(&o));

    let target = dir.path().join("restored.db");
    let url = format!("sqlite://{}?mode=rwc", target.display());
    let restore = |key: &str, args: &[&str]| {
        let mut cmd = crate::helpers::bare_command();
        cmd.env("PORTCULLIS_DATABASE_URL", &url).env("PORTCULLIS_MASTER_KEY", key).args(args).output().unwrap()
    };
    // Another master key: refused, nothing in place.
    let other_key = "q83vEjRWc2MEM2t8dGhpcyBpcyBhIHRlc3Qga2V5ISE=";
    assert_clean_failure(&restore(other_key, &["restore", file.to_str().unwrap()]), "does not open");
    assert!(!target.exists(), "nothing written");
    // The right key: restored.
    let o = restore(&app.db.master_key, &["--json", "restore", file.to_str().unwrap()]);
    let v = json(&o);
    assert_eq!(v["users"], 1, "{v}");
    assert_eq!(v["clients"], 1, "{v}");
    assert_eq!(v["audit_chain"]["status"], "intact", "{v}");
    // A backup whose audit trail was altered afterwards: refused.
    let altered = dir.path().join("altered.db");
    std::fs::copy(&file, &altered).unwrap();
    {
        let db = Database::connect(format!("sqlite://{}?mode=rw", altered.display())).await.unwrap();
        let seal = portcullis::storage::audit_chain::seal(&db, app.state.master_key.audit_key()).await.unwrap();
        assert!(seal.1.seq > 0);
        audit_event::Entity::update_many()
            .col_expr(audit_event::Column::Outcome, sea_orm::sea_query::Expr::value("failure"))
            .filter(audit_event::Column::Seq.eq(1))
            .exec(&db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
    let other_target = dir.path().join("other.db");
    let other_url = format!("sqlite://{}?mode=rwc", other_target.display());
    let mut cmd = crate::helpers::bare_command();
    let o = cmd
        .env("PORTCULLIS_DATABASE_URL", &other_url)
        .env("PORTCULLIS_MASTER_KEY", &app.db.master_key)
        .args(["restore", altered.to_str().unwrap()])
        .output()
        .unwrap();
    assert_clean_failure(&o, "audit chain is broken");
    assert!(!other_target.exists(), "nothing put in place");

    // Again, over the restored data: refused.
    assert_clean_failure(&restore(&app.db.master_key, &["restore", file.to_str().unwrap()]), "holds data");

    // A server on the restored database knows the token signed before.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = {
        let mut cmd = crate::helpers::bare_command();
        cmd.env("PORTCULLIS_DATABASE_URL", &url)
            .env("PORTCULLIS_MASTER_KEY", &app.db.master_key)
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            // The same issuer as the original: the token's `iss`.
            .env("PORTCULLIS_ISSUER", &app.state.settings.issuer)
            .env("PORTCULLIS_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..300 {
        if reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the restored server starts");
    let r: Value = reqwest::Client::new()
        .post(format!("{base}/introspect"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(r["active"], true, "the token signed before the backup verifies after the restore: {r}");
    assert_eq!(r["client_id"], "svc");
}
