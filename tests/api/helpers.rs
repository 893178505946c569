use std::process::{Command, Output, Stdio};

use base64::Engine;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::startup::Application;
use portcullis::state::AppState;
use sea_orm::{ConnectionTrait, Database};

/// A database of its own for one test.
pub struct TestDb {
    pub url: String,
    pub master_key: String,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        let master_key =
            base64::engine::general_purpose::STANDARD.encode(portcullis::crypto::random_bytes(32).unwrap());
        match std::env::var("PORTCULLIS_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url).await.expect("connect to PORTCULLIS_TEST_DATABASE_URL");
                admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
                admin.close().await.ok();
                let mut url = url::Url::parse(&admin_url).expect("a postgres URL");
                url.set_path(&format!("/{name}"));
                Self { url: url.to_string(), master_key, _dir: None, pg_admin: Some((admin_url, name)) }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/portcullis.db?mode=rwc", dir.path().display());
                Self { url, master_key, _dir: Some(dir), pg_admin: None }
            }
        }
    }

    pub fn settings(&self) -> Settings {
        Settings::for_test(&self.url, &self.master_key)
    }

    /// Runs the real `portcullis` binary against this database.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.cli_env(args, stdin, &[])
    }

    /// `cli` with more `PORTCULLIS_*` settings in its environment.
    pub fn cli_env(&self, args: &[&str], stdin: Option<&str>, env: &[(String, String)]) -> Output {
        let mut cmd = bare_command();
        cmd.env("PORTCULLIS_DATABASE_URL", &self.url)
            .env("PORTCULLIS_MASTER_KEY", &self.master_key)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run portcullis");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("wait for portcullis")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_admin.take() {
            // Drop happens outside any runtime we may use: a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ =
                            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub http: reqwest::Client,
    /// Kept so the database lives as long as the app.
    #[allow(dead_code)]
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    let db = TestDb::new().await;
    spawn_app_on(db).await
}

pub async fn spawn_app_on(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Starts the app with adjusted settings (the issuer is always the real address)
/// on a fixed clock that tests move with `state.clock.advance`.
pub async fn spawn_app_with(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on_clock(db, Clock::fixed(chrono::Utc::now()), adjust).await
}

/// For tests where something outside (a browser's authenticator) reads the
/// real time.
pub async fn spawn_app_on_clock(db: TestDb, clock: Clock, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut settings = db.settings();
    settings.issuer = address.clone();
    adjust(&mut settings);
    let (state, _) = AppState::build(settings, clock).await.expect("build state");
    state.prepare_keys().await.expect("signing keys");
    let app = Application::build_on(listener, state.clone()).expect("serve");
    tokio::spawn(app.run_until_stopped());
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    TestApp { address, state, http, db }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A fresh browser: its own cookie jar, no redirects followed.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
    }

    /// Creates a user with a password through the same service the CLI uses.
    pub async fn create_user(&self, username: &str, password: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let new = portcullis::admin::users::NewUser::parse(
            username,
            None,
            None,
            &roles,
            Some(secrecy::SecretString::from(password.to_owned())),
        )
        .unwrap();
        portcullis::admin::users::create(&self.state, &portcullis::admin::Actor::cli(), new).await.unwrap().id
    }

    /// GETs a page and returns its CSRF token.
    pub async fn csrf_from(&self, browser: &reqwest::Client, path: &str) -> String {
        let html = browser.get(self.url(path)).send().await.unwrap().text().await.unwrap();
        csrf_in(&html)
    }

    /// Submits the login form as a browser would.
    pub async fn login(&self, browser: &reqwest::Client, username: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf_from(browser, "/login").await;
        browser
            .post(self.url("/login"))
            .form(&[("csrf", csrf.as_str()), ("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }
}

/// The value of the hidden `csrf` input of a page.
pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no csrf field in {html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CLI failed with exactly one line of explanation and no panic.
pub fn assert_clean_failure(o: &Output, expect_in_message: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stdout: {}", stdout(o));
    assert!(!err.contains("panicked"), "panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(expect_in_message), "expected {expect_in_message:?} in {err:?}");
}

/// A second instance on the same database and issuer as `app` (behind one
/// load balancer, as it were), with its own fixed clock.
pub struct Replica {
    pub address: String,
    pub state: AppState,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }
}

pub async fn spawn_replica(app: &TestApp, adjust: impl FnOnce(&mut Settings)) -> Replica {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut settings = (*app.state.settings).clone();
    adjust(&mut settings);
    let (state, _) = AppState::build(settings, Clock::fixed(app.state.clock.now())).await.expect("build replica");
    state.prepare_keys().await.expect("keys");
    let server = Application::build_on(listener, state.clone()).expect("serve");
    tokio::spawn(server.run_until_stopped());
    Replica { address, state }
}

/// The `Location` of a redirect ("" when there is none).
pub fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// One query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The (unverified) claims of a JWT.
pub fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// One admin-API call: method, path, bearer token (if any) and JSON body;
/// the status and the JSON answer (`null` when the body is not JSON).
pub async fn api(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let mut r = match method {
        "POST" => http.post(app.url(path)),
        "PUT" => http.put(app.url(path)),
        "PATCH" => http.patch(app.url(path)),
        "DELETE" => http.delete(app.url(path)),
        _ => http.get(app.url(path)),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// An app whose issuer is `http://localhost:PORT` (WebAuthn needs a domain
/// name; browsers treat localhost as a secure context), reached there too.
pub async fn spawn_app_at_localhost(db: TestDb) -> TestApp {
    let mut app = spawn_app_with(db, |s| s.issuer = s.issuer.replace("127.0.0.1", "localhost")).await;
    app.address = app.address.replace("127.0.0.1", "localhost");
    app
}

/// The `portcullis` binary with none of this process's `PORTCULLIS_*`
/// settings (each test gives its own).
pub fn bare_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PORTCULLIS_")) {
        cmd.env_remove(k);
    }
    cmd
}
