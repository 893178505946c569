//! `portcullis apply FILE` (issue #19, part 1): roles and clients declared
//! in TOML, reconciled idempotently in one transaction; `--dry-run` prints
//! the diff and writes nothing; `--prune` removes only what the file
//! manages; managed clients refuse changes elsewhere; a bad file names line
//! and column and writes nothing; secrets only by reference.

use portcullis::storage::entities::{client, role};
use sea_orm::EntityTrait;
use serde_json::Value;

use crate::helpers::{TestApp, assert_clean_failure, spawn_app, stderr, stdout};
use crate::oauth::token_req;

const SECRET: &str = "a-client-secret-from-the-environment-0123456789";

fn apply(app: &TestApp, args: &[&str]) -> std::process::Output {
    let env = [("WEBAPP_SECRET".to_owned(), SECRET.to_owned())];
    let mut all = vec!["apply"];
    all.extend_from_slice(args);
    app.db.cli_env(&all, None, &env)
}

fn realm(scopes: &str, with_old: bool) -> String {
    let old = if with_old {
        "\n[[clients]]\nclient_id = \"old\"\npublic = true\nredirect_uri = [\"https://old.example.com/cb\"]\n"
    } else {
        ""
    };
    format!(
        r#"[[roles]]
name = "billing"
description = "Billing service"

[[clients]]
client_id = "webapp"
name = "Web app"
redirect_uri = ["https://app.example.com/callback"]
scope = [{scopes}]
secret_env = "WEBAPP_SECRET"

[[clients]]
client_id = "reports"
grant = ["client_credentials"]
role = ["billing"]
secret_env = "WEBAPP_SECRET"
{old}"#
    )
}

#[tokio::test]
async fn apply_creates_then_is_a_no_op_and_a_dry_run_prints_the_exact_diff() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("realm.toml");
    std::fs::write(&file, realm(r#""openid", "profile""#, false)).unwrap();
    let path = file.to_str().unwrap();

    let o = apply(&app, &[path]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A created client shows what it is given (what a reviewer must see:
    // roles, resources, redirect URIs), never its secret.
    assert_eq!(
        stdout(&o),
        "+ role billing\n+ client webapp\n    grant_types: [\"authorization_code\",\"refresh_token\"]\n    id_token_alg: \"RS256\"\n    name: \"Web app\"\n    pkce: \"required\"\n    redirect_uris: [\"https://app.example.com/callback\"]\n    scopes: [\"openid\",\"profile\"]\n+ client reports\n    grant_types: [\"client_credentials\"]\n    id_token_alg: \"RS256\"\n    pkce: \"required\"\n    roles: [\"billing\"]\n3 changes applied\n"
    );
    assert!(!stdout(&o).contains(SECRET));
    // The secret came from the environment: client_credentials works with it.
    let (s, _, _) = token_req(&app, Some(("reports", SECRET)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);

    // Twice: nothing to do.
    let o = apply(&app, &[path]);
    assert_eq!(stdout(&o), format!("no changes: the database matches {path}\n"));

    // A changed scope list: the dry run prints the change, field by field, and writes nothing.
    std::fs::write(&file, realm(r#""openid""#, false)).unwrap();
    let o = apply(&app, &["--dry-run", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "~ client webapp\n    scopes: [\"openid\",\"profile\"] → [\"openid\"]\n1 changes (dry run: nothing written)\n"
    );
    let c = client::Entity::find_by_id("webapp").one(&app.state.db).await.unwrap().unwrap();
    assert!(c.scopes.contains("profile"), "the dry run wrote nothing");
    assert!(apply(&app, &[path]).status.success());
    let c = client::Entity::find_by_id("webapp").one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(c.scopes, r#"["openid"]"#);
    assert!(c.managed_by.as_deref().unwrap().ends_with("realm.toml"));
    let v: Value = serde_json::from_str(&stdout(&apply(&app, &["--json", path]))).unwrap_or_default();
    assert_eq!(v["changes"], serde_json::json!([]), "{v}");
}

#[tokio::test]
async fn prune_removes_only_what_the_file_manages_and_managed_clients_refuse_other_changes() {
    let app = spawn_app().await;
    // A client made by hand: the file does not manage it.
    let o = app.db.cli(&["client", "add", "handmade", "--redirect-uri", "https://h.example.com/cb", "--public"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("realm.toml");
    std::fs::write(&file, realm(r#""openid""#, true)).unwrap();
    let path = file.to_str().unwrap();
    assert!(apply(&app, &[path]).status.success());

    // Changing a managed client elsewhere is refused, pointing at the file.
    assert_clean_failure(
        &app.db.cli(&["client", "update", "webapp", "--name", "X"], None),
        "managed by the declarative file",
    );
    assert_clean_failure(&app.db.cli(&["client", "remove", "old"], None), "change it there");
    let shown: Value =
        serde_json::from_str(&stdout(&app.db.cli(&["--json", "client", "show", "webapp"], None))).unwrap();
    assert!(shown["managed_by"].as_str().unwrap().ends_with("realm.toml"), "{shown}");
    // The admin API: the same refusal, as a problem naming the file.
    let aud = format!("{}/admin", app.address);
    let token = crate::admin_api::service_token(&app, "ops", &["admin"], &aud).await;
    let body = serde_json::json!({ "name": "Renamed" });
    let (s, problem) =
        crate::helpers::api(&app, "PATCH", "/admin/api/v1/clients/webapp", Some(&token), Some(body)).await;
    assert_eq!(s, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("realm.toml"), "{problem}");
    let (s, _) = crate::helpers::api(&app, "DELETE", "/admin/api/v1/clients/webapp", Some(&token), None).await;
    assert_eq!(s, 400);
    let (s, shown) = crate::helpers::api(&app, "GET", "/admin/api/v1/clients/webapp", Some(&token), None).await;
    assert_eq!(s, 200);
    assert!(shown["managed_by"].as_str().unwrap().ends_with("realm.toml"), "marked in the API: {shown}");

    // Without "old" and with --prune: it goes; the hand-made one stays.
    std::fs::write(&file, realm(r#""openid""#, false)).unwrap();
    let o = apply(&app, &["--prune", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "- client old\n1 changes applied\n");
    assert!(client::Entity::find_by_id("old").one(&app.state.db).await.unwrap().is_none());
    assert!(client::Entity::find_by_id("handmade").one(&app.state.db).await.unwrap().is_some());
    // Without --prune nothing is removed.
    std::fs::write(&file, "[[roles]]\nname = \"billing\"\ndescription = \"Billing service\"\n").unwrap();
    let o = apply(&app, &[path]);
    assert_eq!(stdout(&o), format!("no changes: the database matches {path}\n"));
    // With --prune, the managed clients no longer declared go; a role
    // still held (by a person) does not.
    let o = apply(&app, &["--prune", path]);
    assert_eq!(stdout(&o), "- client webapp\n- client reports\n2 changes applied\n");
    app.create_user("payer", "violet anvil tramline", &["billing"]).await;
    std::fs::write(&file, "").unwrap();
    assert_clean_failure(&apply(&app, &["--prune", path]), "hold it");
    assert!(role::Entity::find_by_id("billing").one(&app.state.db).await.unwrap().is_some());
}

#[tokio::test]
async fn a_bad_file_names_line_and_column_and_writes_nothing() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let path = file.to_str().unwrap();
    let cases = [
        // An unknown key (a secret written inline is one).
        ("[[roles]]\nname = \"ok-role\"\n\n[[clients]]\nclient_id = \"c\"\nsecret = \"inline\"\n", "line 6, column 1"),
        // An invalid value: named with the entry's line.
        (
            "[[roles]]\nname = \"ok-role\"\n\n[[clients]]\nclient_id = \"c\"\npublic = true\nredirect_uri = [\"not a uri\"]\n",
            "line 4, column 1 (client c)",
        ),
        // A role that does not exist.
        (
            "[[roles]]\nname = \"ok-role\"\n\n[[clients]]\nclient_id = \"c\"\ngrant = [\"client_credentials\"]\nrole = [\"nope\"]\nsecret_env = \"WEBAPP_SECRET\"\n",
            "line 4, column 1 (client c)",
        ),
        // A secret variable that is not set.
        (
            "[[clients]]\nclient_id = \"c\"\ngrant = [\"client_credentials\"]\nsecret_env = \"UNSET_VARIABLE_42\"\n",
            "UNSET_VARIABLE_42",
        ),
        // A confidential client without a secret.
        ("[[clients]]\nclient_id = \"c\"\ngrant = [\"client_credentials\"]\n", "needs secret_env or secret_file"),
    ];
    for (text, expect) in cases {
        std::fs::write(&file, text).unwrap();
        assert_clean_failure(&apply(&app, &[path]), expect);
    }
    assert!(role::Entity::find_by_id("ok-role").one(&app.state.db).await.unwrap().is_none(), "nothing written");
    assert!(client::Entity::find_by_id("c").one(&app.state.db).await.unwrap().is_none());
}

/// `serve --apply FILE` applies on every start (container deployments),
/// and does not start on a bad file.
#[tokio::test]
async fn serve_applies_the_file_on_start_and_refuses_a_bad_one() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("realm.toml");
    std::fs::write(&file, realm(r#""openid""#, false)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let serve = |path: &std::path::Path| {
        let mut cmd = crate::helpers::bare_command();
        cmd.env("PORTCULLIS_DATABASE_URL", &app.db.url)
            .env("PORTCULLIS_MASTER_KEY", &app.db.master_key)
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_ISSUER", format!("http://127.0.0.1:{port}"))
            .env("PORTCULLIS_LOG", "error")
            .env("WEBAPP_SECRET", SECRET)
            .args(["serve", "--apply", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut server = serve(&file);
    let mut ready = false;
    for _ in 0..300 {
        if reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(ready);
    assert!(client::Entity::find_by_id("webapp").one(&app.state.db).await.unwrap().is_some(), "applied on start");
    std::fs::write(&file, "[[clients]]\nclient_id = \"x\"\nbogus = 1\n").unwrap();
    let out = serve(&file).wait_with_output().unwrap();
    assert!(!out.status.success(), "a bad file stops the start");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 3, column 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the file changes takes effect: a new secret (the old one stops), a
/// client's roles; what it may not do is refused — switching public and
/// confidential, taking over what another file manages; a second file's
/// prune leaves the first file's objects alone.
#[tokio::test]
async fn changes_take_effect_and_files_do_not_take_each_others_objects() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("realm.toml");
    std::fs::write(&file, realm(r#""openid""#, false)).unwrap();
    let path = file.to_str().unwrap();
    assert!(apply(&app, &[path]).status.success());

    // A new secret from the environment: the old one stops working.
    let new_secret = "another-client-secret-from-the-environment-987654";
    let env = [("WEBAPP_SECRET".to_owned(), new_secret.to_owned())];
    let o = app.db.cli_env(&["apply", path], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("secret:"), "{}", stdout(&o));
    assert!(!stdout(&o).contains(new_secret), "never printed");
    let (s, _, _) = token_req(&app, Some(("reports", SECRET)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 401, "the old secret stopped working");
    let (s, _, _) = token_req(&app, Some(("reports", new_secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);

    // Roles follow the file.
    let text = realm(r#""openid""#, false).replace("role = [\"billing\"]", "role = []");
    std::fs::write(&file, text).unwrap();
    let o = app.db.cli_env(&["apply", path], None, &env);
    assert!(stdout(&o).contains("roles: [\"billing\"] → []"), "{}", stdout(&o));
    let held = portcullis::storage::entities::client_role::Entity::find().all(&app.state.db).await.unwrap();
    assert!(held.iter().all(|r| r.client_id != "reports"), "the role rows follow");

    // Public ↔ confidential: refused, as `client update` refuses it.
    let text = realm(r#""openid""#, false)
        .replace("scope = [\"openid\"]\nsecret_env = \"WEBAPP_SECRET\"", "scope = [\"openid\"]\npublic = true");
    std::fs::write(&file, text).unwrap();
    assert_clean_failure(&app.db.cli_env(&["apply", path], None, &env), "cannot be switched");

    // Another file: may not take "webapp"; its prune leaves "webapp" alone.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "[[clients]]\nclient_id = \"webapp\"\nredirect_uri = [\"https://app.example.com/callback\"]\nsecret_env = \"WEBAPP_SECRET\"\n",
    )
    .unwrap();
    assert_clean_failure(&app.db.cli_env(&["apply", other.to_str().unwrap()], None, &env), "managed by another");
    std::fs::write(&other, "[[roles]]\nname = \"other-role\"\n").unwrap();
    let o = app.db.cli_env(&["apply", "--prune", other.to_str().unwrap()], None, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "+ role other-role\n1 changes applied\n", "nothing of realm.toml pruned");
    assert!(client::Entity::find_by_id("webapp").one(&app.state.db).await.unwrap().is_some());
}

/// Accounts in the file: created without a secret, with an invitation that
/// activates them; changed and adopted field by field; their profile and
/// roles refused elsewhere (credentials stay the administrators'); pruned
/// by disabling, never erasing.
#[tokio::test]
async fn declared_users_get_an_invitation_follow_the_file_and_are_disabled_when_dropped() {
    let app = spawn_app().await;
    app.create_user("bob", "violet anvil tramline", &[]).await; // exists already: adopted
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.toml");
    let path = file.to_str().unwrap();
    let people = |alice_name: &str, with_bob: bool| {
        let bob = if with_bob { "\n[[users]]\nusername = \"bob\"\nrole = [\"billing\"]\n" } else { "" };
        format!(
            "[[roles]]\nname = \"billing\"\n\n[[users]]\nusername = \"alice\"\nemail = \"alice@example.com\"\nname = \"{alice_name}\"\nrole = [\"billing\"]\n{bob}"
        )
    };
    std::fs::write(&file, people("Alice", true)).unwrap();
    let o = apply(&app, &["--dry-run", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("+ user alice (gets an invitation)"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("invitation for"), "no link from a dry run");
    let o = apply(&app, &["--json", path]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // (The CLI's issuer is its own configuration's; the test server listens elsewhere.)
    let url = v["invitations"][0]["url"].as_str().unwrap().replace("http://127.0.0.1:8080", &app.address);
    assert_eq!(v["invitations"][0]["username"], "alice");
    assert!(v["changes"].as_array().unwrap().iter().any(|c| c["action"] == "adopt" && c["name"] == "bob"), "{v}");
    // The invitation activates the account, once.
    let b = app.browser();
    let r = crate::lifecycle::set_password_through(&b, &url, "a brand new passphrase 42").await;
    assert_eq!(r.status(), 303, "activated");
    assert_eq!(app.login(&app.browser(), "alice", "a brand new passphrase 42").await.status(), 303);
    // Twice: nothing; a changed name: one field.
    assert_eq!(stdout(&apply(&app, &[path])), format!("no changes: the database matches {path}\n"));
    std::fs::write(&file, people("Alice B.", true)).unwrap();
    assert_eq!(stdout(&apply(&app, &[path])), "~ user alice\n    name: \"Alice\" → \"Alice B.\"\n1 changes applied\n");
    // Elsewhere: profile and roles refused, credentials allowed.
    assert_clean_failure(&app.db.cli(&["user", "revoke", "alice", "billing"], None), "managed by the declarative file");
    assert_clean_failure(&app.db.cli(&["user", "disable", "alice"], None), "people.toml");
    assert_clean_failure(&app.db.cli(&["user", "delete", "alice"], None), "change it there");
    let o = app.db.cli(&["user", "set-password", "alice", "--password-stdin"], Some("yet another passphrase 77\n"));
    assert!(o.status.success(), "credentials stay the administrators': {}", stderr(&o));
    // The admin pages mark what the file manages, and refuse its changes there too.
    let admin = crate::admin_pages::logged_in(&app, "root", &["admin"]).await;
    let page = admin.get(app.url("/admin/users/alice")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"id="managed-by""#) && page.contains("people.toml"), "{page}");
    let roles = admin.get(app.url("/admin/roles")).send().await.unwrap().text().await.unwrap();
    assert!(roles.contains("managed by people.toml"), "{roles}");
    let r = crate::admin_pages::act(&app, &admin, "alice", "disable", &[]).await;
    let body = r.text().await.unwrap();
    assert!(body.contains("people.toml"), "refused on the page too: {body}");
    // Dropped from the file, with --prune: disabled, not erased.
    std::fs::write(&file, people("Alice B.", false)).unwrap();
    let o = apply(&app, &["--prune", path]);
    assert_eq!(stdout(&o), "- user bob (disabled, not erased)\n1 changes applied\n");
    let bob = portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "bob").await.unwrap();
    assert!(bob.disabled);
}
