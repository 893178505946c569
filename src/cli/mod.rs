//! The `portcullis` command line: `serve` (the default), `migrate`, and the
//! `user`, `role`, `client` and `keys` groups (docs/CLI.md; the names are the contract of ../shared/docs/CONTRACTS.md).
//!
//! Script-facing output is JSON on stdout with `--json`; errors are one line on
//! stderr with a non-zero exit code.

mod clients;
mod ops;
mod output;
mod restore;
mod users;
use clients::{ClientCmd, client};
use users::{UserCmd, user};

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Initial access tokens for dynamic client registration (RFC 7591).
    #[command(subcommand, name = "registration-token")]
    RegistrationToken(RegistrationTokenCmd),
}

#[derive(Debug, Subcommand)]
enum RegistrationTokenCmd {
    /// Create a single-use token (valid 7 days) that lets one client register
    /// itself at POST /register; printed once.
    Create,
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
        Command::RegistrationToken(RegistrationTokenCmd::Create) => {
            let token = admin::clients::registration::create_initial_token(&state, &actor).await?;
            out.registration_token(&token);
            Ok(())
        }
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
        RoleCmd::List => out.roles(&roles::list(state, actor).await?),
    }
    Ok(())
}
