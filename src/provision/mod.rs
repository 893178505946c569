//! `portcullis apply FILE`: roles and clients declared in a TOML file
//! (../shared/docs/CONTRACTS.md: each entry's keys are the long names of the
//! `role add` / `client add` options, `-` as `_`, a repeatable option a
//! list), reconciled with the database idempotently in one transaction.
//! Nothing is written on any error; `dry_run` computes the changes and
//! rolls back. Objects the file creates or adopts are marked as managed by
//! it: the CLI, admin API and pages refuse to change them.
//!
//! Secrets never appear in the file: a confidential client names a file or
//! an environment variable holding its secret.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

pub mod users;

use crate::admin::clients::ClientSpec;
use crate::admin::clients::declared::{Change, Declared};
use crate::admin::{Actor, AdminError};
use crate::policy::Permission;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The name the file manages its objects under (default: the file's
    /// name): stable across mount paths; two files that manage different
    /// objects need different names.
    source: Option<String>,
    #[serde(default)]
    roles: Vec<toml::Spanned<RoleDecl>>,
    #[serde(default)]
    clients: Vec<toml::Spanned<ClientDecl>>,
    #[serde(default)]
    users: Vec<toml::Spanned<UserDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDecl {
    username: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    role: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDecl {
    name: String,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientDecl {
    client_id: String,
    name: Option<String>,
    #[serde(default)]
    redirect_uri: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uri: Vec<String>,
    #[serde(default)]
    role: Vec<String>,
    #[serde(default)]
    first_party: bool,
    pkce: Option<String>,
    id_token_alg: Option<String>,
    #[serde(default)]
    require_mfa: bool,
    backchannel_logout_uri: Option<String>,
    /// A JWK Set file (relative to the declaring file).
    jwks: Option<PathBuf>,
    /// An access-policy file (JSON, relative to the declaring file).
    policy: Option<PathBuf>,
    refresh_grace_secs: Option<i32>,
    #[serde(default)]
    resource: Vec<String>,
    profile: Option<String>,
    #[serde(default)]
    dpop: bool,
    #[serde(default)]
    require_par: bool,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
}

/// Why nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}, line {line}, column {column} ({what}): {message}")]
    At { file: String, line: usize, column: usize, what: String, message: String },
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// What was (or would be) changed.
#[derive(Debug, serde::Serialize)]
pub struct Applied {
    pub file: String,
    pub dry_run: bool,
    pub changes: Vec<Change>,
    /// Links for the accounts created (none in a dry run): shown once.
    pub invitations: Vec<users::Invitation>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses and checks the file: every error names its line and column.
fn load(path: &Path) -> Result<(File, String), ApplyError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ApplyError::File { file: file.clone(), message: format!("cannot read it: {e}") })?;
    let parsed: File = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| line_col(&text, s.start));
        ApplyError::At { file: file.clone(), line, column, what: "syntax".into(), message: e.message().to_owned() }
    })?;
    Ok((parsed, text))
}

fn read_secret(base: &Path, d: &ClientDecl) -> Result<Option<SecretString>, String> {
    let text = match (&d.secret_file, &d.secret_env) {
        (Some(_), Some(_)) => return Err("set secret_file or secret_env, not both".into()),
        (Some(f), None) => {
            let path = base.join(f);
            std::fs::read_to_string(&path).map_err(|e| format!("secret_file {}: {e}", path.display()))?
        }
        (None, Some(var)) => std::env::var(var).map_err(|_| format!("secret_env: ${var} is not set"))?,
        (None, None) => return Ok(None),
    };
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.len() < 32 {
        return Err("the client secret must be at least 32 characters".into());
    }
    Ok(Some(SecretString::from(secret)))
}

fn spec_of(base: &Path, d: &ClientDecl) -> Result<ClientSpec, String> {
    let read = |f: &PathBuf| -> Result<String, String> {
        let path = base.join(f);
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let access_policy = match &d.policy {
        None => None,
        Some(f) => Some(
            crate::policy::access::AccessPolicy::parse_json(&read(f)?)
                .map_err(|e| format!("policy {}: {}", f.display(), e.reason))?,
        ),
    };
    Ok(ClientSpec {
        client_id: d.client_id.clone(),
        name: d.name.clone(),
        redirect_uris: d.redirect_uri.clone(),
        public: d.public,
        grants: if d.grant.is_empty() {
            vec!["authorization_code".into(), "refresh_token".into()]
        } else {
            d.grant.clone()
        },
        scopes: d.scope.clone(),
        post_logout_redirect_uris: d.post_logout_redirect_uri.clone(),
        roles: d.role.clone(),
        first_party: d.first_party,
        pkce: d.pkce.clone(),
        id_token_alg: d.id_token_alg.clone(),
        require_mfa: d.require_mfa,
        backchannel_logout_uri: d.backchannel_logout_uri.clone(),
        jwks: d.jwks.as_ref().map(read).transpose()?,
        access_policy,
        resources: d.resource.clone(),
        refresh_grace_secs: d.refresh_grace_secs,
        profile: d.profile.clone(),
        dpop: d.dpop,
        require_par: d.require_par,
    })
}

/// Reconciles the database with `path`.
pub async fn apply(
    state: &AppState,
    actor: &Actor,
    path: &Path,
    dry_run: bool,
    prune: bool,
) -> Result<Applied, ApplyError> {
    actor.require(Permission::RolesWrite)?;
    actor.require(Permission::ClientsWrite)?;
    let (parsed, text) = load(path)?;
    let file = path.display().to_string();
    let source = match &parsed.source {
        Some(s) if !s.trim().is_empty() && s.len() <= 200 && !s.chars().any(char::is_control) => s.trim().to_owned(),
        Some(_) => {
            return Err(ApplyError::File { file, message: "source: 1–200 characters, no control characters".into() });
        }
        None => path.file_name().map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned()),
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let at = |span: std::ops::Range<usize>, what: String, message: String| {
        let (line, column) = line_col(&text, span.start);
        ApplyError::At { file: file.clone(), line, column, what, message }
    };
    let mut people = Vec::new();
    for u in &parsed.users {
        let d = u.get_ref();
        let what = format!("user {}", d.username);
        let bad = |e: crate::domain::ParseError| at(u.span(), what.clone(), e.to_string());
        let username = crate::domain::Username::parse(&d.username).map_err(bad)?;
        if people.iter().any(|p: &users::DeclaredUser| p.username.key() == username.key()) {
            return Err(at(u.span(), what, "declared twice".into()));
        }
        people.push(users::DeclaredUser {
            username,
            email: d.email.as_deref().map(crate::domain::Email::parse).transpose().map_err(bad)?,
            name: d.name.as_deref().map(crate::domain::DisplayName::parse).transpose().map_err(bad)?,
            roles: d.role.iter().map(|r| crate::domain::RoleName::parse(r)).collect::<Result<_, _>>().map_err(bad)?,
        });
    }
    if !people.is_empty() {
        // An invitation lets its holder choose the password: a credential.
        actor.require(Permission::UsersWrite)?;
        actor.require(Permission::UsersCredentials)?;
    }
    // Everything read and checked before the transaction; an error names
    // the entry it is in.
    let mut roles: Vec<(String, Option<String>)> = Vec::new();
    for r in &parsed.roles {
        let d = r.get_ref();
        let what = format!("role {}", d.name);
        let name = crate::domain::RoleName::parse(&d.name).map_err(|e| at(r.span(), what.clone(), e.to_string()))?;
        if roles.iter().any(|(n, _)| n == name.as_str()) {
            return Err(at(r.span(), what, "declared twice".into()));
        }
        let bad = d.description.as_ref().is_some_and(|t| t.chars().count() > 512 || t.chars().any(char::is_control));
        if bad {
            return Err(at(r.span(), what, "description: at most 512 characters, no control characters".into()));
        }
        roles.push((name.to_string(), d.description.clone()));
    }
    let mut declared = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in &parsed.clients {
        let d = c.get_ref();
        let what = format!("client {}", d.client_id);
        if !seen.insert(d.client_id.clone()) {
            return Err(at(c.span(), what, "declared twice".into()));
        }
        let spec = spec_of(&base, d).map_err(|m| at(c.span(), what.clone(), m))?;
        let secret = read_secret(&base, d).map_err(|m| at(c.span(), what.clone(), m))?;
        declared.push((c.span(), Declared { spec, secret }));
    }

    let mut who = actor.clone();
    who.name = format!("apply:{}", actor.name);
    let actor_name = who.name.clone();
    let txn = crate::storage::begin_write(&state.db).await.map_err(AdminError::from)?;
    if state.db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // One apply at a time (replicas started together with --apply).
        use sea_orm::ConnectionTrait;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(746163656170)").await.map_err(AdminError::from)?;
    }
    let mut changes = crate::admin::roles::reconcile_declared(state, &txn, &actor_name, &source, &roles, false).await?;
    // Clients one at a time, so that an invalid one is named with its line.
    let mut client_changes = Vec::new();
    for (span, d) in &declared {
        let what = format!("client {}", d.spec.client_id);
        let one = crate::admin::clients::declared::reconcile(state, &txn, &who, &source, std::slice::from_ref(d))
            .await
            .map_err(|e| at(span.clone(), what, e.to_string()))?;
        client_changes.extend(one);
    }
    if prune {
        let all: Vec<Declared> =
            declared.iter().map(|(_, d)| Declared { spec: d.spec.clone(), secret: None }).collect();
        let kept_only = crate::admin::clients::declared::prune(state, &txn, &who, &source, &all).await?;
        client_changes.extend(kept_only);
    }
    changes.extend(client_changes);
    let mut invitations = Vec::new();
    for (d, u) in people.iter().zip(&parsed.users) {
        let what = format!("user {}", d.username);
        let (change, invitation) =
            users::reconcile(state, &txn, &who, &source, d).await.map_err(|e| at(u.span(), what, e.to_string()))?;
        changes.extend(change);
        invitations.extend(invitation);
    }
    if prune {
        changes.extend(users::prune(state, &txn, &who, &source, &people).await?);
    }
    if prune {
        // Roles last: a client pruned now no longer holds its roles.
        let pruned = crate::admin::roles::reconcile_declared(state, &txn, &actor_name, &source, &roles, true).await?;
        changes.extend(pruned);
    }
    if dry_run {
        txn.rollback().await.map_err(AdminError::from)?;
        invitations.clear();
    } else {
        txn.commit().await.map_err(AdminError::from)?;
        // Users may have changed (roles, profile, disabled, removed).
        state.users.clear();
        // After the commit: an earlier invalidation could be refilled with
        // the old row by a read before it.
        for c in changes.iter().filter(|c| c.kind == "client") {
            state.clients.invalidate(&c.name);
        }
    }
    Ok(Applied { file, dry_run, changes, invitations })
}
