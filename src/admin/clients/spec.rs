//! A client registration as asked for (`ClientSpec`, `ClientPatch`) and
//! its parsing into checked domain values.

use serde::Deserialize;

use super::AdminError;
use crate::domain::ParseError;
use crate::domain::is_resource_indicator;
use crate::domain::{ClientId, ClientKind, GrantType, RedirectUri, RoleName, Scope, SigningAlg};
use crate::policy::access::AccessPolicy;
use crate::storage::clients::{Client, ClientProfile};

/// The registration a `client add` asks for, in raw form.
#[derive(Debug, Default, Clone)]
pub struct ClientSpec {
    pub client_id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub roles: Vec<String>,
    pub first_party: bool,
    /// `required` (default) or `optional`.
    pub pkce: Option<String>,
    pub id_token_alg: Option<String>,
    pub require_mfa: bool,
    pub backchannel_logout_uri: Option<String>,
    /// A JWK Set document (JSON text) for `private_key_jwt`.
    pub jwks: Option<String>,
    /// Who may use the client (ABAC); `None` or an empty policy admits everyone.
    pub access_policy: Option<AccessPolicy>,
    /// Resource indicators (RFC 8707, absolute URIs) the client may ask tokens for.
    pub resources: Vec<String>,
    /// Opt-in refresh-token grace in seconds (0–60); none = strict rotation.
    pub refresh_grace_secs: Option<i32>,
    /// A security profile (`fapi2`), or none.
    pub profile: Option<String>,
    /// Access tokens only DPoP-bound (RFC 9449 `dpop_bound_access_tokens`).
    pub dpop: bool,
    /// Authorization requests only pushed (RFC 9126 `require_pushed_authorization_requests`).
    pub require_par: bool,
}

fn dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// The parsed, checked registration.
pub(super) struct Parsed {
    pub(super) client_id: ClientId,
    pub(super) name: Option<String>,
    pub(super) kind: ClientKind,
    pub(super) redirect_uris: Vec<RedirectUri>,
    pub(super) post_logout: Vec<RedirectUri>,
    pub(super) grants: Vec<GrantType>,
    pub(super) scopes: Vec<Scope>,
    pub(super) roles: Vec<RoleName>,
    pub(super) pkce_required: bool,
    pub(super) id_token_alg: SigningAlg,
    pub(super) backchannel: Option<RedirectUri>,
    pub(super) jwks: Option<String>,
    pub(super) access_policy: Option<String>,
    pub(super) resources: Vec<String>,
    pub(super) refresh_grace_secs: Option<i32>,
    pub(super) profile: Option<ClientProfile>,
}

pub(super) fn parse(spec: &ClientSpec) -> Result<Parsed, AdminError> {
    let client_id = ClientId::parse(&spec.client_id)?;
    let kind = if spec.public { ClientKind::Public } else { ClientKind::Confidential };
    let name = match spec.name.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > 128 || n.chars().any(char::is_control) => {
            return Err(AdminError::Refused("name: must be at most 128 characters without control characters".into()));
        }
        Some("") | None => None,
        Some(n) => Some(n.to_owned()),
    };
    let mut grants: Vec<GrantType> = spec.grants.iter().map(|g| GrantType::parse(g)).collect::<Result<_, _>>()?;
    if grants.is_empty() {
        grants = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    }
    grants.sort_by_key(|g| g.as_str());
    grants.dedup();
    let redirect_uris: Vec<RedirectUri> =
        spec.redirect_uris.iter().map(|u| RedirectUri::parse(u, kind)).collect::<Result<_, _>>()?;
    let post_logout: Vec<RedirectUri> =
        spec.post_logout_redirect_uris.iter().map(|u| RedirectUri::parse(u, kind)).collect::<Result<_, _>>()?;
    let scopes = dedup(spec.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>()?);
    let roles = dedup(spec.roles.iter().map(|r| RoleName::parse(r)).collect::<Result<Vec<_>, _>>()?);
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(AdminError::Refused(
            "redirect_uri: at least one --redirect-uri is required for the authorization_code grant".into(),
        ));
    }
    if kind == ClientKind::Public && grants.contains(&GrantType::TokenExchange) {
        return Err(AdminError::Refused(
            "grant: a public client cannot exchange tokens (it has no secret to authenticate with)".into(),
        ));
    }
    if kind == ClientKind::Public && grants.contains(&GrantType::ClientCredentials) {
        return Err(AdminError::Refused(
            "grant: a public client cannot use client_credentials (it has no secret to authenticate with)".into(),
        ));
    }
    let pkce_required = match spec.pkce.as_deref() {
        None | Some("required") => true,
        Some("optional") if kind == ClientKind::Confidential => false,
        Some("optional") => {
            return Err(AdminError::Refused("pkce: a public client must use PKCE (RFC 9700 §2.1.1)".into()));
        }
        Some(other) => {
            return Err(AdminError::Refused(format!("pkce: {other:?} is not one of required, optional")));
        }
    };
    let profile = match spec.profile.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(ClientProfile::parse(p).ok_or_else(|| {
            AdminError::Invalid(ParseError { field: "profile", reason: format!("{p:?} is not fapi2") })
        })?),
    };
    let fapi2 = profile == Some(ClientProfile::Fapi2);
    // FAPI 2.0 signs with ES256 (or EdDSA, PS256) only: its clients default
    // to ES256 ID tokens.
    let default_alg = if fapi2 { SigningAlg::ES256 } else { SigningAlg::RS256 };
    let id_token_alg = spec.id_token_alg.as_deref().map(SigningAlg::parse).transpose()?.unwrap_or(default_alg);
    let backchannel = spec
        .backchannel_logout_uri
        .as_deref()
        .map(|u| RedirectUri::parse(u, ClientKind::Confidential))
        .transpose()
        .map_err(|e| AdminError::Refused(format!("backchannel_logout_uri: {}", e.reason)))?;
    let jwks = match &spec.jwks {
        None => None,
        Some(text) => {
            let doc: serde_json::Value =
                serde_json::from_str(text).map_err(|e| AdminError::Refused(format!("jwks: not valid JSON ({e})")))?;
            let keys = doc.get("keys").and_then(|k| k.as_array()).ok_or_else(|| {
                AdminError::Refused("jwks: must be a JWK Set, an object with a \"keys\" array".into())
            })?;
            if keys.is_empty() {
                return Err(AdminError::Refused("jwks: the \"keys\" array is empty".into()));
            }
            if keys.iter().any(|k| k.get("d").is_some() || k.get("k").is_some()) {
                return Err(AdminError::Refused(
                    "jwks: contains private or symmetric key material; register public keys only".into(),
                ));
            }
            Some(doc.to_string())
        }
    };
    let access_policy = match spec.access_policy.clone().map(AccessPolicy::checked).transpose()? {
        Some(p) if !p.is_empty() => Some(serde_json::to_string(&p).map_err(|e| AdminError::Refused(e.to_string()))?),
        _ => None,
    };
    if spec.resources.len() > 32 {
        return Err(AdminError::Invalid(ParseError { field: "resource", reason: "at most 32 resources".into() }));
    }
    let resources = dedup(
        spec.resources
            .iter()
            .map(|r| {
                let r = r.trim();
                if is_resource_indicator(r) {
                    Ok(r.to_owned())
                } else {
                    Err(AdminError::Invalid(ParseError {
                        field: "resource",
                        reason: "must be an absolute URI without a fragment, at most 512 characters (RFC 8707)".into(),
                    }))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
    );
    let max = crate::oauth::grants::MAX_REFRESH_GRACE_SECS;
    let refresh_grace_secs = match spec.refresh_grace_secs {
        Some(g) if !(0..=max).contains(&g) => {
            return Err(AdminError::Invalid(ParseError {
                field: "refresh_grace_secs",
                reason: format!("must be between 0 and {max} seconds"),
            }));
        }
        Some(0) | None => None,
        g => g,
    };
    if fapi2 {
        fapi2_rules(kind, pkce_required, id_token_alg, jwks.is_some())?;
    }
    Ok(Parsed {
        profile,
        refresh_grace_secs,
        resources,
        access_policy,
        client_id,
        name,
        kind,
        redirect_uris,
        post_logout,
        grants,
        scopes,
        roles,
        pkce_required,
        id_token_alg,
        backchannel,
        jwks,
    })
}

/// What the FAPI 2.0 Security Profile (§5.3.2) asks of a client's
/// registration: confidential, authenticating with `private_key_jwt` (so
/// its public keys are registered), PKCE, and no RS256 signatures.
fn fapi2_rules(kind: ClientKind, pkce_required: bool, alg: SigningAlg, has_jwks: bool) -> Result<(), AdminError> {
    let refuse = |why: &str| Err(AdminError::Refused(format!("profile fapi2: {why}")));
    if kind == ClientKind::Public {
        return refuse("the client must be confidential (FAPI 2.0 §5.3.2.1)");
    }
    if !has_jwks {
        return refuse("register the client's public keys (--jwks): it authenticates with private_key_jwt");
    }
    if !pkce_required {
        return refuse("PKCE cannot be optional");
    }
    if alg == SigningAlg::RS256 {
        return refuse("ID tokens must be signed with ES256 or EdDSA, not RS256");
    }
    Ok(())
}

pub(super) fn json_list<T: AsRef<str>>(items: &[T]) -> String {
    serde_json::Value::from(items.iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>()).to_string()
}

/// Reads a JSON field that may be absent (leave unchanged), `null` (clear) or
/// a value (set).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change to a client: absent fields stay as they are; `null` clears an
/// optional one. The client id and kind (public/confidential) cannot change.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub first_party: Option<bool>,
    /// `required` or `optional`.
    pub pkce: Option<String>,
    pub id_token_alg: Option<String>,
    pub require_mfa: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    /// A JWK Set (object) for `private_key_jwt`; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AccessPolicy>)]
    pub access_policy: Option<Option<AccessPolicy>>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    pub resources: Option<Vec<String>>,
    /// Refresh-token grace in seconds (0–60); `null` or 0: strict rotation.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub refresh_grace_secs: Option<Option<i32>>,
    /// `fapi2`, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub profile: Option<Option<String>>,
    /// Access tokens only DPoP-bound.
    pub dpop: Option<bool>,
    /// Authorization requests only pushed (PAR).
    pub require_par: Option<bool>,
}

impl ClientPatch {
    /// Whether the patch changes how the client authenticates (its keys) or
    /// where its codes, tokens and logouts are sent: such changes — like
    /// secrets and deletions — need a recent login of the administrator, on
    /// the pages and in the admin API alike.
    pub fn touches_credentials(&self) -> bool {
        self.jwks.is_some()
            || self.redirect_uris.is_some()
            || self.post_logout_redirect_uris.is_some()
            || self.backchannel_logout_uri.is_some()
            || self.grant_types.is_some()
            || self.profile.is_some()
            || self.dpop == Some(false)
            || self.require_par == Some(false)
    }
}

/// The spec a stored client was registered with (for applying a patch).
pub(super) fn spec_of(c: &Client) -> ClientSpec {
    ClientSpec {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        public: c.public,
        grants: c.grant_types.clone(),
        scopes: c.scopes.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        roles: c.roles.clone(),
        first_party: c.first_party,
        pkce: Some(if c.pkce_required { "required" } else { "optional" }.to_owned()),
        id_token_alg: Some(c.id_token_alg.as_str().to_owned()),
        require_mfa: c.require_mfa,
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        jwks: c.jwks.clone(),
        access_policy: c.access_policy.clone(),
        resources: c.resources.clone(),
        refresh_grace_secs: c.refresh_grace_secs,
        profile: c.profile.map(|p| p.as_str().to_owned()),
        dpop: c.dpop_bound,
        require_par: c.require_par,
    }
}
