//! Client access policies (ABAC): data stored with a client, evaluated when a
//! user is sent to it (the authorize step) and every time its refresh token is
//! used, so a user who loses a role, moves department or leaves the office
//! network stops getting tokens for the client.
//!
//! ```json
//! { "roles_any": ["finance", "audit"], "roles_all": ["staff"],
//!   "attributes": { "department": ["finance"] },
//!   "networks": ["10.0.0.0/8", "2001:db8::/32"],
//!   "mfa": true, "max_auth_age": 3600 }
//! ```
//! `"mfa": "phr"` asks for a phishing-resistant sign-in (a passkey); `true`
//! for any second factor.
//! Every rule present must hold; an absent rule admits everyone. An empty
//! policy (`{}`) admits every user, like no policy.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::{AttributeKey, ParseError, RoleName, parse_attribute_value};

/// The stored (and accepted) form of a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// The user must hold at least one of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_any: Vec<String>,
    /// The user must hold every one of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_all: Vec<String>,
    /// For each attribute key, the values admitted (the user's value must be one of them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The request must come from one of these networks (CIDR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// The user must have authenticated with a second factor (`true`), or
    /// with a phishing-resistant one, a passkey (`"phr"`).
    #[serde(default, skip_serializing_if = "MfaRule::is_off")]
    pub mfa: MfaRule,
    /// The user's authentication may be at most this many seconds old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_auth_age: Option<i64>,
}

/// The `mfa` rule of a policy: off (`false`, or absent), any second factor
/// (`true`), or phishing-resistant (`"phr"`). Ordered by strength.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum MfaRule {
    #[default]
    Off,
    Any,
    PhishingResistant,
}

impl MfaRule {
    pub fn is_off(&self) -> bool {
        *self == Self::Off
    }
}

impl Serialize for MfaRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Off => s.serialize_bool(false),
            Self::Any => s.serialize_bool(true),
            Self::PhishingResistant => s.serialize_str("phr"),
        }
    }
}

impl<'de> Deserialize<'de> for MfaRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Level(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(false) => Ok(Self::Off),
            Raw::Flag(true) => Ok(Self::Any),
            Raw::Level(l) if l == "phr" => Ok(Self::PhishingResistant),
            Raw::Level(_) => Err(serde::de::Error::custom("mfa: expected true, false or \"phr\"")),
        }
    }
}

impl utoipa::PartialSchema for MfaRule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["phr"])))
            .description(Some("true: any second factor; \"phr\": a passkey (phishing-resistant)"))
            .into()
    }
}

impl utoipa::ToSchema for MfaRule {}

/// Why a policy refused a user; recorded in the audit log, never shown to the
/// user beyond "access denied".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Role,
    Attribute,
    Network,
    Mfa,
    AuthAge,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Role => "role",
            Self::Attribute => "attribute",
            Self::Network => "network",
            Self::Mfa => "mfa",
            Self::AuthAge => "auth_age",
        }
    }
}

/// What the policy is evaluated against.
#[derive(Debug)]
pub struct Subject<'a> {
    pub roles: &'a [String],
    pub attributes: &'a BTreeMap<String, String>,
    pub ip: Option<IpAddr>,
    /// The strength of the sign-in, on the rule's scale.
    pub mfa: MfaRule,
    pub auth_age_secs: i64,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError { field, reason: reason.into() }
}

/// The most entries any one rule may list (keeps evaluation and storage small).
const MAX_ENTRIES: usize = 64;

impl AccessPolicy {
    /// Parses and checks a policy document; the error names the offending field.
    pub fn parse_json(text: &str) -> Result<Self, ParseError> {
        let p: Self = serde_json::from_str(text).map_err(|e| bad("access_policy", e.to_string()))?;
        p.checked()
    }

    /// Checks every rule and returns the policy in canonical form (sorted, deduplicated).
    pub fn checked(mut self) -> Result<Self, ParseError> {
        for (field, list) in
            [("access_policy.roles_any", &mut self.roles_any), ("access_policy.roles_all", &mut self.roles_all)]
        {
            if list.len() > MAX_ENTRIES {
                return Err(bad(field, format!("at most {MAX_ENTRIES} roles")));
            }
            for r in list.iter_mut() {
                *r = RoleName::parse(r).map_err(|e| bad(field, e.reason))?.to_string();
            }
            list.sort();
            list.dedup();
        }
        if self.attributes.len() > MAX_ENTRIES {
            return Err(bad("access_policy.attributes", format!("at most {MAX_ENTRIES} attributes")));
        }
        let mut attributes = BTreeMap::new();
        for (k, mut values) in std::mem::take(&mut self.attributes) {
            let key = AttributeKey::parse(&k).map_err(|e| bad("access_policy.attributes", e.reason))?;
            if values.is_empty() || values.len() > MAX_ENTRIES {
                return Err(bad(
                    "access_policy.attributes",
                    format!("{:?} must list 1 to {MAX_ENTRIES} admitted values", key.as_str()),
                ));
            }
            for v in &values {
                parse_attribute_value(v).map_err(|e| bad("access_policy.attributes", e.reason))?;
            }
            values.sort();
            values.dedup();
            attributes.insert(key.to_string(), values);
        }
        self.attributes = attributes;
        if self.networks.len() > MAX_ENTRIES {
            return Err(bad("access_policy.networks", format!("at most {MAX_ENTRIES} networks")));
        }
        for n in self.networks.iter_mut() {
            let net: IpNet = n.trim().parse().map_err(|_| {
                bad("access_policy.networks", format!("{:?} is not a CIDR network such as 10.0.0.0/8", short(n)))
            })?;
            *n = net.trunc().to_string();
        }
        self.networks.sort();
        self.networks.dedup();
        if let Some(age) = self.max_auth_age
            && !(1..=366 * 86_400).contains(&age)
        {
            return Err(bad("access_policy.max_auth_age", "must be 1 to 31622400 seconds"));
        }
        Ok(self)
    }

    /// Whether the policy has no rules at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Evaluates every rule; the first that fails is the reason.
    pub fn evaluate(&self, s: &Subject<'_>) -> Result<(), Denial> {
        let has = |r: &String| s.roles.contains(r);
        if !self.roles_all.iter().all(has) || (!self.roles_any.is_empty() && !self.roles_any.iter().any(has)) {
            return Err(Denial::Role);
        }
        for (key, admitted) in &self.attributes {
            if !s.attributes.get(key).is_some_and(|v| admitted.contains(v)) {
                return Err(Denial::Attribute);
            }
        }
        if !self.networks.is_empty() {
            let inside = s.ip.is_some_and(|ip| {
                let ip = canonical(ip);
                self.networks.iter().filter_map(|n| n.parse::<IpNet>().ok()).any(|n| n.contains(&ip))
            });
            if !inside {
                return Err(Denial::Network);
            }
        }
        if s.mfa < self.mfa {
            return Err(Denial::Mfa);
        }
        if self.max_auth_age.is_some_and(|max| s.auth_age_secs > max) {
            return Err(Denial::AuthAge);
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4
/// client) is matched as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(roles: &'a [String], attrs: &'a BTreeMap<String, String>, ip: &str) -> Subject<'a> {
        Subject { roles, attributes: attrs, ip: ip.parse().ok(), mfa: MfaRule::Any, auth_age_secs: 10 }
    }

    #[test]
    fn every_rule_admits_and_denies_as_written() {
        let p = AccessPolicy::parse_json(
            r#"{"roles_any":["finance","audit"],"roles_all":["staff"],"attributes":{"department":["finance"]},
                "networks":["10.1.2.3/8","::ffff:0:0/96"],"mfa":true,"max_auth_age":60}"#,
        )
        .unwrap();
        assert_eq!(p.networks, vec!["10.0.0.0/8".to_owned(), "::ffff:0.0.0.0/96".to_owned()]);
        let roles = vec!["finance".to_owned(), "staff".to_owned()];
        let attrs = BTreeMap::from([("department".to_owned(), "finance".to_owned())]);
        assert_eq!(p.evaluate(&subject(&roles, &attrs, "10.9.9.9")), Ok(()));
        assert_eq!(p.evaluate(&subject(&roles, &attrs, "::ffff:10.9.9.9")), Ok(()));
        assert_eq!(p.evaluate(&subject(&roles, &attrs, "192.168.1.1")), Err(Denial::Network));
        assert_eq!(p.evaluate(&Subject { ip: None, ..subject(&roles, &attrs, "") }), Err(Denial::Network));
        let only_staff = vec!["staff".to_owned()];
        assert_eq!(p.evaluate(&subject(&only_staff, &attrs, "10.0.0.1")), Err(Denial::Role));
        let no_staff = vec!["finance".to_owned()];
        assert_eq!(p.evaluate(&subject(&no_staff, &attrs, "10.0.0.1")), Err(Denial::Role));
        let sales = BTreeMap::from([("department".to_owned(), "sales".to_owned())]);
        assert_eq!(p.evaluate(&subject(&roles, &sales, "10.0.0.1")), Err(Denial::Attribute));
        assert_eq!(p.evaluate(&subject(&roles, &BTreeMap::new(), "10.0.0.1")), Err(Denial::Attribute));
        let pwd_only = Subject { mfa: MfaRule::Off, ..subject(&roles, &attrs, "10.0.0.1") };
        assert_eq!(p.evaluate(&pwd_only), Err(Denial::Mfa));
        let old = Subject { auth_age_secs: 61, ..subject(&roles, &attrs, "10.0.0.1") };
        assert_eq!(p.evaluate(&old), Err(Denial::AuthAge));
        let empty = AccessPolicy::parse_json("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.evaluate(&Subject { mfa: MfaRule::Off, ..subject(&[], &BTreeMap::new(), "") }), Ok(()));
    }

    #[test]
    fn the_mfa_rule_takes_true_or_phr_and_orders_them() {
        let phr = AccessPolicy::parse_json(r#"{"mfa":"phr"}"#).unwrap();
        assert_eq!(phr.mfa, MfaRule::PhishingResistant);
        assert_eq!(serde_json::to_string(&phr).unwrap(), r#"{"mfa":"phr"}"#);
        assert_eq!(AccessPolicy::parse_json(r#"{"mfa":true}"#).unwrap().mfa, MfaRule::Any);
        assert!(AccessPolicy::parse_json(r#"{"mfa":false}"#).unwrap().is_empty());
        assert!(AccessPolicy::parse_json(r#"{"mfa":"yes"}"#).is_err());
        let attrs = BTreeMap::new();
        let with = |mfa| Subject { mfa, ..subject(&[], &attrs, "10.0.0.1") };
        assert_eq!(phr.evaluate(&with(MfaRule::Any)), Err(Denial::Mfa), "a code is not a passkey");
        assert_eq!(phr.evaluate(&with(MfaRule::PhishingResistant)), Ok(()));
        let any = AccessPolicy::parse_json(r#"{"mfa":true}"#).unwrap();
        assert_eq!(any.evaluate(&with(MfaRule::PhishingResistant)), Ok(()), "a passkey is a second factor");
    }

    #[test]
    fn bad_policies_name_the_field() {
        let field = |j: &str| AccessPolicy::parse_json(j).unwrap_err().field;
        assert_eq!(field(r#"{"networks":["10.0.0.0/33"]}"#), "access_policy.networks");
        assert_eq!(field(r#"{"networks":["finance"]}"#), "access_policy.networks");
        assert_eq!(field(r#"{"attributes":{"bad key!":["x"]}}"#), "access_policy.attributes");
        assert_eq!(field(r#"{"attributes":{"department":[]}}"#), "access_policy.attributes");
        assert_eq!(field(r#"{"roles_any":["no spaces allowed"]}"#), "access_policy.roles_any");
        assert_eq!(field(r#"{"max_auth_age":0}"#), "access_policy.max_auth_age");
        assert_eq!(field(r#"{"colour":"red"}"#), "access_policy");
    }
}
