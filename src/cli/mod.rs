//! The `portcullis` command line: `serve` (the default), `migrate`, and the
//! `user`, `role`, `client` and `keys` groups (docs/CLI.md; the names are the contract of ../shared/docs/CONTRACTS.md).
//!
//! Script-facing output is JSON on stdout with `--json`; errors are one line on
//! stderr with a non-zero exit code.

mod ops;
mod output;
mod restore;
mod users;
use users::{UserCmd, user};

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::admin::keys;
use crate::admin::{self, Actor, AdminError};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::master_key::KeySource;
use crate::state::AppState;
use output::Output;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about = "An OAuth 2.0 / OpenID Connect identity provider")]
pub struct Cli {
    /// A TOML configuration file (settings as in the README's table).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations and serve (the default).
    Serve {
        /// Apply this declarative file (as `portcullis apply FILE`) before
        /// serving, on every start; the server does not start if it fails.
        #[arg(long, value_name = "FILE")]
        apply: Option<PathBuf>,
    },
    /// Reconcile roles and clients with a declarative TOML file (docs/APPLY.md).
    Apply {
        file: PathBuf,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
        /// Remove what the file manages but no longer declares.
        #[arg(long)]
        prune: bool,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage roles.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Exit 0 if the local server answers /healthz (for container health checks).
    Healthcheck,
    /// An online, consistent copy of the SQLite database into FILE (never
    /// overwritten); the master key is not in it. PostgreSQL: use pg_dump.
    Backup { file: PathBuf },
    /// Restore a backup made by `backup` into an empty SQLite database (the
    /// configured one); the backup's master key must be configured.
    Restore { file: PathBuf },
    /// The audit log's hash chain.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The master key (docs/KEY_ROTATION.md).
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCmd),
}

#[derive(Debug, Subcommand)]
enum MasterKeyCmd {
    /// Seal every secret again under a new master key (resumable: run again
    /// until it reports complete).
    Rotate {
        /// The new key: base64 of 32 random bytes.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Seal pending records, then check every record against its hash and
    /// its place in the chain; names the first broken record (exit 1).
    Verify {
        /// A head kept elsewhere (`SEQ:HASH`, from /metrics or a stream):
        /// the chain must still hold it (repeatable).
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Vec<String>,
    },
    /// Deliver a webhook or stdout sink's records again from SEQ (after dead
    /// letters, or for a receiver that lost data); receivers deduplicate by seq.
    Resend {
        /// The sink's name, as configured.
        #[arg(long)]
        sink: String,
        /// The first record to send again.
        #[arg(long, value_name = "SEQ")]
        from: i64,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCmd {
    /// Create a role.
    Add {
        role: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List roles.
    List,
}

#[derive(Debug, Args)]
struct ClientAddArgs {
    client_id: String,
    #[arg(long)]
    name: Option<String>,
    /// An exact redirect URI (repeatable; required with authorization_code).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE always).
    #[arg(long)]
    public: bool,
    /// authorization_code | refresh_token | client_credentials (repeatable).
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// An allowed scope (repeatable).
    #[arg(long = "scope", value_name = "S")]
    scopes: Vec<String>,
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A role of the client itself, carried in its client_credentials tokens.
    #[arg(long = "role", value_name = "R")]
    roles: Vec<String>,
    /// A first-party client: no consent page.
    #[arg(long)]
    first_party: bool,
    /// required (default) | optional (confidential clients only).
    #[arg(long, value_name = "required|optional")]
    pkce: Option<String>,
    /// RS256 (default) | ES256 | EdDSA.
    #[arg(long, value_name = "ALG")]
    id_token_alg: Option<String>,
    /// Users must have completed MFA to use this client.
    #[arg(long)]
    require_mfa: bool,
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// A JWK Set file with the client's public keys (private_key_jwt).
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// An access-policy file (JSON; see docs/ADMIN.md): who may use the client.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Let a rotated-out refresh token be redeemed once more within this many
    /// seconds (0–60; for clients that refresh in parallel). Default: strict.
    #[arg(long, value_name = "SECS")]
    refresh_grace_secs: Option<i32>,
    /// A resource indicator (RFC 8707 URI) the client may ask tokens for; repeatable.
    #[arg(long = "resource", value_name = "URI")]
    resources: Vec<String>,
}

/// `client update`: each option given replaces that field (a repeatable one
/// replaces the whole list); the others stay as they are.
#[derive(Debug, Args)]
struct ClientUpdateArgs {
    client_id: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    #[arg(long = "scope", value_name = "S")]
    scopes: Vec<String>,
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    #[arg(long = "role", value_name = "R")]
    roles: Vec<String>,
    /// Remove every role of the client.
    #[arg(long, conflicts_with = "roles")]
    no_roles: bool,
    /// true | false
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    first_party: Option<bool>,
    #[arg(long, value_name = "required|optional")]
    pkce: Option<String>,
    #[arg(long, value_name = "ALG")]
    id_token_alg: Option<String>,
    /// true | false
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    require_mfa: Option<bool>,
    /// An empty value removes it.
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[arg(long, value_name = "SECS")]
    refresh_grace_secs: Option<i32>,
    #[arg(long = "resource", value_name = "URI")]
    resources: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ClientCmd {
    /// Change a client's registration: each option given replaces that field.
    Update(Box<ClientUpdateArgs>),
    /// Register a client; prints its secret once.
    Add(Box<ClientAddArgs>),
    /// List clients.
    List,
    /// Show one client.
    Show { client_id: String },
    /// Delete a client.
    #[command(alias = "delete")]
    Remove { client_id: String },
    /// Replace a confidential client's secret; prints the new one once.
    RotateSecret { client_id: String },
    /// Set (from a JSON file) or clear a client's access policy.
    SetPolicy {
        client_id: String,
        /// The policy file (JSON).
        #[arg(long, value_name = "FILE", required_unless_present = "clear", conflicts_with = "clear")]
        policy: Option<PathBuf>,
        /// Remove the policy: every user may use the client.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// List signing keys.
    List,
    /// Add new active signing keys; old ones stay published until their tokens expire.
    Rotate,
}

/// Why the command failed: printed as one line.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::state::StartError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{0}")]
    Input(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let (settings, warnings) = Settings::load(cli.config.as_deref())?;
    let command = cli.command.unwrap_or(Command::Serve { apply: None });
    let serving = matches!(command, Command::Serve { .. });
    // Commands keep stderr quiet unless something is wrong; the server logs at
    // the configured level.
    let filter =
        if serving || std::env::var_os("PORTCULLIS_LOG").is_some() { settings.log.clone() } else { "warn".into() };
    crate::telemetry::init(&filter, &settings.log_format);
    for w in warnings {
        tracing::warn!("{w}");
    }
    if matches!(command, Command::Healthcheck) {
        return healthcheck(settings.bind);
    }
    let mut settings = settings;
    let second_configured = settings.master_key_secondary.is_some() || settings.master_key_secondary_file.is_some();
    if let Command::MasterKey(MasterKeyCmd::Rotate { new_key_file }) = &command
        && settings.master_key_secondary.is_none()
        && settings.master_key_secondary_file.is_none()
    {
        // An interrupted rotation left some secrets under the new key: the
        // same command, run again, reads them with it.
        settings.master_key_secondary_file = Some(new_key_file.clone());
    }
    if let Command::Restore { file } = &command {
        // Before the state is built: building it would write signing keys
        // into the empty target.
        let restored = restore::restore(&settings, file).await?;
        Output { json: cli.json }.restored(&restored);
        return Ok(());
    }
    let (state, key_source) = AppState::build(settings, Clock::System).await?;
    match &key_source {
        KeySource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "DEVELOPMENT MODE: generated a new master key file beside the database. Back it up: without it, \
             encrypted secrets (TOTP seeds, signing keys) cannot be read. In production set PORTCULLIS_MASTER_KEY \
             or PORTCULLIS_MASTER_KEY_FILE."
        ),
        KeySource::File(path) if state.settings.master_key_file.as_ref().is_none_or(|p| p != path) => {
            tracing::warn!(
                path = %path.display(),
                "DEVELOPMENT MODE: using the master key file beside the database; set PORTCULLIS_MASTER_KEY_FILE in production"
            )
        }
        _ => {}
    }
    let out = Output { json: cli.json };
    let actor = Actor::cli();
    match command {
        Command::Serve { apply } => {
            if let Some(file) = apply {
                let applied = crate::provision::apply(&state, &actor, &file, false, false)
                    .await
                    .map_err(|e| CliError::Input(e.to_string()))?;
                tracing::info!(file = %applied.file, changes = applied.changes.len(), "declarative file applied");
            }
            serve(state).await
        }
        Command::Apply { file, dry_run, prune } => {
            let applied = crate::provision::apply(&state, &actor, &file, dry_run, prune)
                .await
                .map_err(|e| CliError::Input(e.to_string()))?;
            out.applied(&applied);
            Ok(())
        }
        Command::Healthcheck => Ok(()),
        Command::Migrate => {
            out.message("migrations applied");
            Ok(())
        }
        Command::Backup { file } => {
            let bytes = crate::storage::backup(&state.db, &file).await.map_err(|e| CliError::Input(e.to_string()))?;
            out.message(&format!(
                "backup written to {} ({bytes} bytes); the master key is not in it: keep the key, separately, to restore",
                file.display()
            ));
            Ok(())
        }
        Command::Restore { .. } => Ok(()),
        Command::Audit(AuditCmd::Verify { expect }) => ops::audit_verify(&state, &out, &expect).await,
        Command::Audit(AuditCmd::Resend { sink, from }) => ops::audit_resend(&state, &actor, &out, &sink, from).await,
        Command::MasterKey(MasterKeyCmd::Rotate { new_key_file }) => {
            let text = std::fs::read_to_string(&new_key_file)
                .map_err(|e| CliError::Input(format!("{}: {e}", new_key_file.display())))?;
            let new = crate::crypto::MasterKey::from_base64(&text)
                .map_err(|e| CliError::Input(format!("{}: {e}", new_key_file.display())))?;
            // With two keys configured (the instances' rotation settings),
            // the new key must be one of them: a third key would seal
            // everything under a key no instance holds.
            let known =
                new.same_key(&state.master_key) || state.master_key.second_key().is_some_and(|s| new.same_key(s));
            if second_configured && !known {
                return Err(CliError::Input(format!(
                    "{} is neither the configured master key nor the second key; with two keys configured, rotate to one of them",
                    new_key_file.display()
                )));
            }
            let done = admin::master_key::rotate(&state, &actor, &new, None).await?;
            out.rotation(&done);
            if done.complete { Ok(()) } else { Err(CliError::Input("rotation incomplete: run it again".into())) }
        }
        Command::User(cmd) => user(&state, &actor, &out, cmd).await,
        Command::Role(cmd) => role(&state, &actor, &out, cmd).await,
        Command::Client(cmd) => client(&state, &actor, &out, cmd).await,
        Command::Keys(cmd) => {
            let list = match cmd {
                KeysCmd::List => keys::list(&state, &actor).await?,
                KeysCmd::Rotate => keys::rotate(&state, &actor).await?,
            };
            out.keys(&list);
            Ok(())
        }
    }
}

async fn serve(state: AppState) -> Result<(), CliError> {
    state.prepare_keys().await?;
    crate::storage::purge::spawn(
        state.db.clone(),
        state.settings.clone(),
        state.clock.clone(),
        state.master_key.audit_key().clone(),
        std::time::Duration::from_secs(60),
    );
    crate::storage::audit_chain::spawn_sealer(
        state.db.clone(),
        state.master_key.audit_key().clone(),
        state.metrics.clone(),
        std::time::Duration::from_millis(state.settings.audit_seal_interval_ms),
    );
    crate::audit::spawn(&state, std::time::Duration::from_millis(state.settings.audit_seal_interval_ms));
    let backend = crate::storage::backend_name(&state.db);
    let bind = state.settings.bind;
    let issuer = state.settings.issuer().to_owned();
    let app = crate::startup::Application::build(state)?;
    tracing::info!(%bind, port = app.port(), %issuer, database = backend, "Portcullis is listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// A dependency-free probe of `GET /healthz` on the local listener.
fn healthcheck(bind: std::net::SocketAddr) -> Result<(), CliError> {
    use std::io::Write;
    let mut addr = bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(CliError::Input("healthcheck: /healthz did not answer 200".into()))
    }
}

/// Reads a secret from standard input: the whole input less one trailing newline.
fn read_stdin_secret(what: &str) -> Result<SecretString, CliError> {
    let mut buf = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut buf)
        .map_err(|e| CliError::Input(format!("cannot read the {what} from standard input: {e}")))?;
    let trimmed = buf.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&buf);
    if trimmed.is_empty() {
        return Err(CliError::Input(format!("no {what} on standard input")));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

async fn role(state: &AppState, actor: &Actor, out: &Output, cmd: RoleCmd) -> Result<(), CliError> {
    use admin::roles;
    match cmd {
        RoleCmd::Add { role, description } => out.role(&roles::add(state, actor, &role, description.as_deref()).await?),
        RoleCmd::List => out.roles(&roles::list(state).await?),
    }
    Ok(())
}

async fn client(state: &AppState, actor: &Actor, out: &Output, cmd: ClientCmd) -> Result<(), CliError> {
    use admin::clients;
    match cmd {
        ClientCmd::Add(a) => {
            let jwks =
                match &a.jwks {
                    Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                        CliError::Input(format!("cannot read the JWK Set file {}: {e}", path.display()))
                    })?),
                    None => None,
                };
            let spec = clients::ClientSpec {
                client_id: a.client_id,
                name: a.name,
                redirect_uris: a.redirect_uris,
                public: a.public,
                grants: a.grants,
                scopes: a.scopes,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                roles: a.roles,
                first_party: a.first_party,
                pkce: a.pkce,
                id_token_alg: a.id_token_alg,
                require_mfa: a.require_mfa,
                backchannel_logout_uri: a.backchannel_logout_uri,
                jwks,
                access_policy: a.policy.as_deref().map(read_policy).transpose()?,
                resources: a.resources,
                refresh_grace_secs: a.refresh_grace_secs,
            };
            out.created_client(&clients::add(state, actor, &spec).await?);
        }
        ClientCmd::Update(a) => {
            let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let jwks = match &a.jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        CliError::Input(format!("cannot read the JWK Set file {}: {e}", path.display()))
                    })?;
                    let doc = serde_json::from_str(&text)
                        .map_err(|e| CliError::Input(format!("jwks: {} is not JSON ({e})", path.display())))?;
                    Some(Some(doc))
                }
                None => None,
            };
            let patch = clients::ClientPatch {
                name: a.name.map(|n| Some(n).filter(|n| !n.trim().is_empty())),
                redirect_uris: list(a.redirect_uris),
                post_logout_redirect_uris: list(a.post_logout_redirect_uris),
                grant_types: list(a.grants),
                scopes: list(a.scopes),
                roles: if a.no_roles { Some(Vec::new()) } else { list(a.roles) },
                first_party: a.first_party,
                pkce: a.pkce,
                id_token_alg: a.id_token_alg,
                require_mfa: a.require_mfa,
                backchannel_logout_uri: a.backchannel_logout_uri.map(|u| Some(u).filter(|u| !u.is_empty())),
                jwks,
                access_policy: a.policy.as_deref().map(read_policy).transpose()?.map(Some),
                resources: list(a.resources),
                refresh_grace_secs: a.refresh_grace_secs.map(Some),
            };
            out.client(&clients::update(state, actor, &a.client_id, patch).await?);
        }
        ClientCmd::List => out.clients(&clients::list(state, actor).await?),
        ClientCmd::Show { client_id } => out.client(&clients::show(state, actor, &client_id).await?),
        ClientCmd::Remove { client_id } => {
            clients::remove(state, actor, &client_id).await?;
            out.message(&format!("client {client_id} removed"));
        }
        ClientCmd::RotateSecret { client_id } => {
            out.created_client(&clients::rotate_secret(state, actor, &client_id).await?)
        }
        ClientCmd::SetPolicy { client_id, policy, clear: _ } => {
            let patch = clients::ClientPatch {
                access_policy: Some(policy.as_deref().map(read_policy).transpose()?),
                ..Default::default()
            };
            out.client(&clients::update(state, actor, &client_id, patch).await?);
        }
    }
    Ok(())
}

fn read_policy(path: &std::path::Path) -> Result<crate::policy::access::AccessPolicy, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read the policy file {}: {e}", path.display())))?;
    crate::policy::access::AccessPolicy::parse_json(&text).map_err(|e| CliError::Admin(e.into()))
}
