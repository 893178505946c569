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

use super::clients::ClientSpec;
use super::clients::declared::{Change, Declared};
use super::{Actor, AdminError};
use crate::policy::Permission;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    roles: Vec<toml::Spanned<RoleDecl>>,
    #[serde(default)]
    clients: Vec<toml::Spanned<ClientDecl>>,
    #[serde(default)]
    users: Vec<toml::Spanned<toml::Value>>,
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
    let source = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let at = |span: std::ops::Range<usize>, what: String, message: String| {
        let (line, column) = line_col(&text, span.start);
        ApplyError::At { file: file.clone(), line, column, what, message }
    };
    if let Some(u) = parsed.users.first() {
        return Err(at(
            u.span(),
            "users".into(),
            "apply does not manage users yet: create them with `portcullis user add` or `user invite`".into(),
        ));
    }
    // Everything read and checked before the transaction; an error names
    // the entry it is in.
    let roles: Vec<(String, Option<String>)> =
        parsed.roles.iter().map(|r| (r.get_ref().name.clone(), r.get_ref().description.clone())).collect();
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
    let mut seen = std::collections::BTreeSet::new();
    for r in &parsed.roles {
        if !seen.insert(r.get_ref().name.clone()) {
            return Err(at(r.span(), format!("role {}", r.get_ref().name), "declared twice".into()));
        }
    }

    let actor_name = format!("apply:{}", actor.name);
    let txn = crate::storage::begin_write(&state.db).await.map_err(AdminError::from)?;
    let mut changes = super::roles::reconcile_declared(state, &txn, &actor_name, &source, &roles, prune).await?;
    // Clients one at a time, so that an invalid one is named with its line.
    let mut client_changes = Vec::new();
    for (span, d) in &declared {
        let what = format!("client {}", d.spec.client_id);
        let one = super::clients::declared::reconcile(state, &txn, &actor_name, &source, std::slice::from_ref(d))
            .await
            .map_err(|e| at(span.clone(), what, e.to_string()))?;
        client_changes.extend(one);
    }
    if prune {
        let all: Vec<Declared> =
            declared.iter().map(|(_, d)| Declared { spec: d.spec.clone(), secret: None }).collect();
        let kept_only = super::clients::declared::prune(state, &txn, &actor_name, &source, &all).await?;
        client_changes.extend(kept_only);
    }
    changes.extend(client_changes);
    if dry_run {
        txn.rollback().await.map_err(AdminError::from)?;
    } else {
        txn.commit().await.map_err(AdminError::from)?;
        // After the commit: an earlier invalidation could be refilled with
        // the old row by a read before it.
        for c in changes.iter().filter(|c| c.kind == "client") {
            state.clients.invalidate(&c.name);
        }
    }
    Ok(Applied { file, dry_run, changes })
}
