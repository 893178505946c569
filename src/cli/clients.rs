//! `portcullis client …`: the client commands, each a call of the admin
//! client service (the same the admin API, the admin pages and `apply` use).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use crate::admin::{self, Actor};
use crate::cli::output::Output;
use crate::state::AppState;

#[derive(Debug, Args)]
pub(super) struct ClientAddArgs {
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
    /// A security profile the client is held to: fapi2 (FAPI 2.0: PAR,
    /// private_key_jwt, PKCE, DPoP, ES256/EdDSA; see README "Finance-grade clients").
    #[arg(long, value_name = "fapi2")]
    profile: Option<String>,
    /// Access tokens only sender-constrained with DPoP (RFC 9449).
    #[arg(long)]
    dpop: bool,
    /// Authorization requests only pushed (RFC 9126 PAR).
    #[arg(long)]
    require_par: bool,
}

/// `client update`: each option given replaces that field (a repeatable one
/// replaces the whole list); the others stay as they are.
#[derive(Debug, Args)]
pub(super) struct ClientUpdateArgs {
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
    /// fapi2, or an empty value for none.
    #[arg(long, value_name = "fapi2")]
    profile: Option<String>,
    /// true | false
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    dpop: Option<bool>,
    /// true | false
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    require_par: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub(super) enum ClientCmd {
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

pub(super) async fn client(state: &AppState, actor: &Actor, out: &Output, cmd: ClientCmd) -> Result<(), CliError> {
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
                profile: a.profile,
                dpop: a.dpop,
                require_par: a.require_par,
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
                profile: a.profile.map(|p| Some(p).filter(|p| !p.trim().is_empty())),
                dpop: a.dpop,
                require_par: a.require_par,
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
