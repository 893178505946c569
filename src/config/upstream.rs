//! Upstream OpenID Connect providers (`[[upstream]]` in the configuration
//! file): what each is and how far it is trusted, checked at load.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings};

/// One upstream OpenID Connect provider (a company IdP, Google, Microsoft,
/// GitLab, another Portcullis…), with Portcullis as its relying party.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamProvider {
    /// In URLs (`/login/upstream/ID`) and the audit log: `[a-z0-9-]`, 1–32.
    pub id: String,
    /// The button: "Sign in with NAME".
    pub name: String,
    /// Its issuer; discovery is read from `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Where the client secret is (never inline): a file …
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// … or an environment variable. Neither: a public client (PKCE only).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes to ask for besides `openid`.
    #[serde(default = "upstream_scopes")]
    pub scopes: Vec<String>,
    /// The first sign-in of an unknown upstream identity creates an account
    /// (just in time). Off: only identities linked from /account sign in.
    #[serde(default)]
    pub create_accounts: bool,
    /// Honour the provider's second factor: an `amr` with `mfa` (RFC 8176:
    /// more than one factor) or an `acr` listed in `mfa_acr_values` counts
    /// as two-step (never as phishing-resistant). Off: a local second factor
    /// is asked for wherever one is required.
    #[serde(default)]
    pub trust_mfa: bool,
    #[serde(default)]
    pub mfa_acr_values: Vec<String>,
    /// The claim of the ID token that lists the person's upstream groups.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Group → local role rules, applied at every sign-in through this
    /// provider: a role whose group is gone is taken away again.
    #[serde(default)]
    pub role_rules: Vec<RoleRule>,
}

/// "Members of upstream group `group` hold local role `role`."
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub group: String,
    pub role: String,
}

fn upstream_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

impl Settings {
    pub(super) fn check_upstream(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.upstream {
            let ok_id = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_id {
                return bad(format!("upstream id {:?}: use 1–32 of a-z, 0-9 and -", p.id));
            }
            if !seen.insert(&p.id) {
                return bad(format!("upstream id {:?} is given twice", p.id));
            }
            let issuer = url::Url::parse(&p.issuer)
                .map_err(|e| ConfigError::Invalid(format!("upstream {}: issuer {:?}: {e}", p.id, p.issuer)))?;
            if issuer.scheme() != "https" && !(issuer.scheme() == "http" && crate::domain::is_loopback(&issuer)) {
                return bad(format!("upstream {}: the issuer must be https (http only on loopback)", p.id));
            }
            if p.client_secret_file.is_some() && p.client_secret_env.is_some() {
                return bad(format!("upstream {}: set client_secret_file or client_secret_env, not both", p.id));
            }
            if p.name.trim().is_empty() || p.client_id.is_empty() {
                return bad(format!("upstream {}: name and client_id are required", p.id));
            }
        }
        Ok(())
    }
}
