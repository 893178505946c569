//! The `claims` request parameter (OIDC Core §5.5) and the one table of which
//! claim belongs to which scope.
//!
//! A claim asked for by name is released like a scope that covers it: the
//! consent page and the stored consent count the scope it belongs to, so
//! `claims` is never a way around consent. `acr` is special: asked for as
//! *essential*, its values are a demand (a step-up, or an error when none can
//! be met); `acr_values` and a voluntary `acr` only state a preference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::OAuthError;

/// The largest `claims` parameter accepted (bytes of JSON).
const MAX_LEN: usize = 4096;
/// Claims named per member at most.
const MAX_CLAIMS: usize = 32;

/// One requested claim (`null` in the request: just "please include it").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimSpec {
    #[serde(default)]
    pub essential: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
}

/// The parsed `claims` parameter: what to put in the ID token and UserInfo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id_token: BTreeMap<String, Option<ClaimSpec>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub userinfo: BTreeMap<String, Option<ClaimSpec>>,
}

/// The scope a claim is released under.
pub fn scope_of(claim: &str) -> Option<&'static str> {
    match claim {
        "name" | "preferred_username" | "updated_at" => Some("profile"),
        "email" | "email_verified" => Some("email"),
        "roles" => Some("roles"),
        "address" => Some("address"),
        "phone_number" | "phone_number_verified" => Some("phone"),
        _ => None,
    }
}

/// The claims a scope releases.
pub fn claims_of(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => &["preferred_username", "name", "updated_at"],
        "email" => &["email", "email_verified"],
        "roles" => &["roles"],
        "address" => &["address"],
        "phone" => &["phone_number", "phone_number_verified"],
        _ => &[],
    }
}

impl ClaimsRequest {
    /// Parses the parameter; anything but an object of objects is
    /// `invalid_request`.
    pub fn parse(text: &str) -> Result<Self, OAuthError> {
        if text.len() > MAX_LEN {
            return Err(OAuthError::InvalidRequest("claims is too long"));
        }
        let invalid = || OAuthError::InvalidRequest("claims is not a valid claims request");
        let value: Value = serde_json::from_str(text).map_err(|_| invalid())?;
        // An object of objects (serde would also take an array for a struct).
        let members_ok = |k: &str| value.get(k).is_none_or(Value::is_object);
        if !value.is_object() || !members_ok("id_token") || !members_ok("userinfo") {
            return Err(invalid());
        }
        let parsed: Self = serde_json::from_value(value).map_err(|_| invalid())?;
        if parsed.id_token.len() > MAX_CLAIMS || parsed.userinfo.len() > MAX_CLAIMS {
            return Err(OAuthError::InvalidRequest("claims names too many claims"));
        }
        Ok(parsed)
    }

    /// The `acr` values demanded as essential (in the ID token or UserInfo).
    pub fn essential_acr(&self) -> Option<Vec<String>> {
        let spec = [self.id_token.get("acr"), self.userinfo.get("acr")]
            .into_iter()
            .flatten()
            .flatten()
            .find(|s| s.essential)?;
        let mut out: Vec<String> = spec.values.iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
        if let Some(v) = spec.value.as_ref().and_then(Value::as_str) {
            out.insert(0, v.to_owned());
        }
        Some(out)
    }

    /// The scopes the named claims belong to (for consent).
    pub fn implied_scopes(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> =
            self.id_token.keys().chain(self.userinfo.keys()).filter_map(|c| scope_of(c)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Keeps only the claims `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.id_token.retain(|k, _| keep(k));
        self.userinfo.retain(|k, _| keep(k));
    }

    pub fn is_empty(&self) -> bool {
        self.id_token.is_empty() && self.userinfo.is_empty()
    }
}

/// Adds to `out` the claims of `user` named in `names` that we hold (`roles`
/// only when given).
pub fn release<'a>(
    u: &crate::storage::users::User,
    roles: Option<&[String]>,
    names: impl IntoIterator<Item = &'a str>,
    out: &mut Map<String, Value>,
) {
    for name in names {
        let v: Option<Value> = match name {
            "preferred_username" => Some(u.username.clone().into()),
            "name" => u.display_name.clone().map(Value::from),
            "updated_at" => Some(u.updated_at.timestamp().into()),
            "email" => u.email.clone().map(Value::from),
            // Addresses are set by administrators, not verified by a mail loop.
            "email_verified" => u.email.as_ref().map(|_| u.email_verified.into()),
            "roles" => roles.map(|r| r.to_vec().into()),
            "phone_number" => u.phone_number.clone().map(Value::from),
            // Numbers are set by administrators or the user, not verified.
            "phone_number_verified" => u.phone_number.as_ref().map(|_| false.into()),
            "address" => u.address.as_ref().and_then(|a| serde_json::to_value(a).ok()),
            _ => None,
        };
        if let Some(v) = v {
            out.insert(name.to_owned(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_parameter_is_parsed_and_essential_acr_found() {
        let c = ClaimsRequest::parse(
            r#"{"userinfo":{"name":{"essential":true},"email":null},"id_token":{"acr":{"essential":true,"values":["2"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.essential_acr(), Some(vec!["2".to_owned()]));
        assert_eq!(c.implied_scopes(), vec!["email", "profile"]);
        let voluntary = ClaimsRequest::parse(r#"{"id_token":{"acr":{"values":["2"]}}}"#).unwrap();
        assert_eq!(voluntary.essential_acr(), None);
        for bad in ["[]", "\"x\"", r#"{"userinfo":[1]}"#, r#"{"id_token":{"acr":{"essential":"yes"}}}"#] {
            assert!(ClaimsRequest::parse(bad).is_err(), "{bad}");
        }
        assert!(ClaimsRequest::parse(&format!("{{\"userinfo\":{{\"x\":\"{}\"}}}}", "a".repeat(5000))).is_err());
    }
}
