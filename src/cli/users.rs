//! `portcullis user …`: the account commands, each a call of an admin
//! service (the same the admin API and the admin pages use).

use clap::Subcommand;

use super::{CliError, read_stdin_secret};
use crate::admin::{self, Actor};
use crate::cli::output::Output;
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub(super) enum UserCmd {
    /// Create a user.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// A role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the initial password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Show one user.
    Show { username: String },
    /// Set a user's password (read from standard input).
    SetPassword {
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable an account: it can no longer log in.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// Clear a login lockout.
    Unlock { username: String },
    /// Make a single-use activation link for an account without a password
    /// (prints it; `--send` also mails it to the user's address).
    Invite {
        username: String,
        #[arg(long)]
        send: bool,
    },
    /// Make a single-use password-reset link (prints it; `--send` mails it).
    ResetLink {
        username: String,
        #[arg(long)]
        send: bool,
    },
    /// Remove the user's TOTP and recovery codes and end their sessions.
    ResetMfa { username: String },
    /// List the user's passkeys (name, kind, credential id, when added and last used).
    Passkeys { username: String },
    /// Revoke one of the user's passkeys (a lost key) and end their sessions.
    PasskeyRemove { username: String, credential_id: String },
    /// List the user's linked upstream identities ("Sign in with …").
    Upstream { username: String },
    /// Unlink the user's identity at an upstream provider and end their sessions.
    UpstreamRemove { username: String, provider: String },
    /// Grant a role.
    Grant { username: String, role: String },
    /// Revoke a role.
    Revoke { username: String, role: String },
    /// Set an ABAC attribute, e.g. department finance.
    SetAttr { username: String, key: String, value: String },
    /// Erase a user: sessions and tokens end, the account is deleted, the
    /// audit trail keeps their events under a pseudonym.
    Delete { username: String },
    /// Change profile fields (the OIDC claims); an empty value clears one.
    Update {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// OIDC `phone_number`, e.g. "+31 30 000 0000".
        #[arg(long)]
        phone: Option<String>,
        /// OIDC `address` as JSON: {"street_address":…,"locality":…,"region":…,"postal_code":…,"country":…,"formatted":…}.
        #[arg(long, value_name = "JSON")]
        address: Option<String>,
    },
    /// Import a base32 TOTP seed from a previous provider (read from stdin).
    TotpImport {
        username: String,
        #[arg(long, required = true)]
        secret_stdin: bool,
    },
}

pub(super) async fn user(state: &AppState, actor: &Actor, out: &Output, cmd: UserCmd) -> Result<(), CliError> {
    use admin::users;
    match cmd {
        UserCmd::Add { username, email, name, roles, password_stdin } => {
            let password = if password_stdin { Some(read_stdin_secret("password")?) } else { None };
            let without_password = password.is_none();
            let new = users::NewUser::parse(&username, email.as_deref(), name.as_deref(), &roles, password)?;
            let created = users::create(state, actor, new).await?;
            out.user(&created);
            if without_password {
                // Not an error (an account may be prepared first), but not silent either.
                eprintln!(
                    "note: {} has no password and cannot sign in yet; send an activation link with `portcullis user invite {}`",
                    created.username, created.username
                );
            }
        }
        UserCmd::List => out.users(&users::list(state, actor).await?),
        UserCmd::Show { username } => out.user(&users::show(state, actor, &username).await?),
        UserCmd::SetPassword { username, .. } => {
            let pw = read_stdin_secret("password")?;
            users::set_password(state, actor, &username, &pw).await?;
            out.message(&format!("password of {username} changed"));
        }
        UserCmd::Disable { username } => out.user(&users::set_disabled(state, actor, &username, true).await?),
        UserCmd::Enable { username } => out.user(&users::set_disabled(state, actor, &username, false).await?),
        UserCmd::Grant { username, role } => out.user(&users::grant(state, actor, &username, &role).await?),
        UserCmd::Revoke { username, role } => out.user(&users::revoke(state, actor, &username, &role).await?),
        UserCmd::SetAttr { username, key, value } => {
            out.user(&users::set_attribute(state, actor, &username, &key, &value).await?)
        }
        UserCmd::Delete { username } => {
            let pseudonym = users::delete(state, actor, &username).await?;
            out.message(&format!("user {username} erased; the audit trail calls them {pseudonym}"));
        }
        UserCmd::Update { username, email, name, phone, address } => {
            let clear_or = |v: Option<String>| v.map(|s| Some(s).filter(|s| !s.trim().is_empty()));
            let address = match address {
                None => None,
                Some(a) if a.trim().is_empty() => Some(None),
                Some(a) => {
                    let v = serde_json::from_str(&a).unwrap_or(serde_json::Value::Null);
                    Some(Some(crate::domain::Address::from_json(v).map_err(crate::admin::AdminError::Invalid)?))
                }
            };
            let patch = users::ProfilePatch {
                email: clear_or(email),
                name: clear_or(name),
                phone_number: clear_or(phone),
                address,
            };
            out.user(&users::update_profile(state, actor, &username, patch).await?)
        }
        UserCmd::Unlock { username } => out.user(&users::unlock(state, actor, &username).await?),
        UserCmd::Invite { username, send } => {
            let purpose = crate::lifecycle::Purpose::Invite;
            out.link(&crate::lifecycle::recovery::issue(state, actor, &username, purpose, send).await?);
        }
        UserCmd::ResetLink { username, send } => {
            let purpose = crate::lifecycle::Purpose::Reset;
            out.link(&crate::lifecycle::recovery::issue(state, actor, &username, purpose, send).await?);
        }
        UserCmd::ResetMfa { username } => out.user(&users::reset_mfa(state, actor, &username).await?),
        UserCmd::Passkeys { username } => out.passkeys(&users::passkeys(state, actor, &username).await?),
        UserCmd::Upstream { username } => out.upstream(&users::upstream_identities(state, actor, &username).await?),
        UserCmd::UpstreamRemove { username, provider } => {
            users::remove_upstream(state, actor, &username, &provider).await?;
            out.message(&format!("unlinked {provider} from {username}; their sessions ended"));
        }
        UserCmd::PasskeyRemove { username, credential_id } => {
            users::remove_passkey(state, actor, &username, &credential_id).await?;
            out.message(&format!("passkey {credential_id} of {username} removed; their sessions were ended"));
        }
        UserCmd::TotpImport { username, .. } => {
            let seed = read_stdin_secret("secret")?;
            let codes = users::totp_import(state, actor, &username, &seed).await?;
            out.recovery_codes(&username, &codes);
        }
    }
    Ok(())
}
