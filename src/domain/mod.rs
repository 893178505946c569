//! Newtypes parsed at the edge (CLI arguments, forms, JSON): once a value is one
//! of these, it is valid, and the logic behind never checks it again.

use std::fmt;

pub mod access_policy;
pub mod branding;
pub mod profile;
pub use profile::{Address, PhoneNumber};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Why an input was refused; the text is for the operator or the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    pub field: &'static str,
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError { field, reason: reason.into() }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A login name: 1–64 characters after NFKC normalisation; letters, digits and
/// `. _ - @ +`. Compared case-insensitively through [`Username::key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let s: String = input.trim().nfkc().collect();
        let n = s.chars().count();
        if n == 0 {
            return Err(err("username", "must not be empty"));
        }
        if n > Self::MAX_CHARS {
            return Err(err("username", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_alphanumeric() || "._-@+".contains(*c))) {
            return Err(err("username", format!("must not contain {c:?} (letters, digits and . _ - @ + only)")));
        }
        // "." and ".." are path segments to a browser: /admin/users/../disable
        // would never reach the account.
        if s.chars().all(|c| c == '.') {
            return Err(err("username", "must not be dots only"));
        }
        Ok(Self(s))
    }

    /// The case-insensitive key stored in the unique column.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for Username {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// An e-mail address, checked for shape only (`local@domain`, no spaces, ≤ 254).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);
string_newtype!(Email);

impl Email {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let s = input.trim();
        if s.len() > 254 {
            return Err(err("email", "must be at most 254 characters"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(err("email", "must look like name@example.com"));
        };
        // A bare address (RFC 5322 addr-spec) only: no display name, angle
        // brackets, comments or lists, which a mail library would read as a
        // different recipient than the one shown and counted.
        if local.is_empty()
            || domain.is_empty()
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || local.contains('@')
            || s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c))
        {
            return Err(err("email", "must look like name@example.com"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// A display name: 1–128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);
string_newtype!(DisplayName);

impl DisplayName {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let s: String = input.trim().nfkc().collect();
        let n = s.chars().count();
        if n == 0 || n > 128 {
            return Err(err("name", "must be 1 to 128 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("name", "must not contain control characters"));
        }
        Ok(Self(s))
    }
}

impl TryFrom<String> for DisplayName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// A role name: 1–64 of lowercase ASCII letters, digits and `_ - . :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);
string_newtype!(RoleName);

impl RoleName {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let s = input.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(err("role", "must be 1 to 64 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.:".contains(&b)) {
            return Err(err("role", "must use lowercase letters, digits and _ - . : only"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for RoleName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// An ABAC attribute key: 1–64 of ASCII letters, digits and `_ - .`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttributeKey(String);
string_newtype!(AttributeKey);

impl AttributeKey {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let s = input.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(err("key", "must be 1 to 64 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return Err(err("key", "must use letters, digits and _ - . only"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for AttributeKey {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// An ABAC attribute value: at most 1024 characters, no control characters.
pub fn parse_attribute_value(input: &str) -> Result<String, ParseError> {
    if input.chars().count() > 1024 {
        return Err(err("value", "must be at most 1024 characters"));
    }
    if input.chars().any(char::is_control) {
        return Err(err("value", "must not contain control characters"));
    }
    Ok(input.to_owned())
}

/// A client identifier: 1–128 of unreserved URI characters (RFC 3986 §2.3), so
/// it is safe in URLs, forms and HTTP Basic credentials without escaping
/// ambiguity (RFC 6749 §2.3.1 form-encodes it; `:` would split Basic).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);
string_newtype!(ClientId);

impl ClientId {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.is_empty() || input.len() > 128 {
            return Err(err("client_id", "must be 1 to 128 characters"));
        }
        if !input.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            return Err(err("client_id", "must use letters, digits and - . _ ~ only"));
        }
        Ok(Self(input.to_owned()))
    }
}

impl TryFrom<String> for ClientId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// A scope token (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`), at most 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);
string_newtype!(Scope);

impl Scope {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.is_empty() || input.len() > 128 {
            return Err(err("scope", "must be 1 to 128 characters"));
        }
        if !input.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            return Err(err("scope", format!("{input:?} is not a valid scope token (RFC 6749 §3.3)")));
        }
        Ok(Self(input.to_owned()))
    }
}

impl Scope {
    /// Splits a `scope` value (RFC 6749 §3.3) into its tokens, in order and
    /// without repeats; a malformed token is the error. The one reading of
    /// a scope value, whether it comes from a request or from storage.
    pub fn split(value: &str) -> Result<Vec<String>, ParseError> {
        let mut out: Vec<String> = Vec::new();
        for t in value.split(' ').filter(|t| !t.is_empty()) {
            Self::parse(t)?;
            if !out.iter().any(|x| x == t) {
                out.push(t.to_owned());
            }
        }
        Ok(out)
    }
}

impl TryFrom<String> for Scope {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

/// The grant types Portcullis issues tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8628 (`device_code` accepted as a short form).
    DeviceCode,
    /// RFC 8693 (`token_exchange` accepted as a short form).
    TokenExchange,
}

impl GrantType {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            "client_credentials" => Ok(Self::ClientCredentials),
            "device_code" | "urn:ietf:params:oauth:grant-type:device_code" => Ok(Self::DeviceCode),
            "token_exchange" | "urn:ietf:params:oauth:grant-type:token-exchange" => Ok(Self::TokenExchange),
            other => Err(err(
                "grant",
                format!(
                    "{other:?} is not one of authorization_code, refresh_token, client_credentials, device_code, token_exchange"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }
}

/// Signing algorithms for ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "RS256" => Ok(Self::RS256),
            "ES256" => Ok(Self::ES256),
            "EdDSA" => Ok(Self::EdDSA),
            other => Err(err("id_token_alg", format!("{other:?} is not one of RS256, ES256, EdDSA"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// What kind of client a redirect URI belongs to: the rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Confidential,
    Public,
}

/// A registered redirect URI (RFC 6749 §3.1.2, RFC 9700 §4.1): absolute, no
/// fragment, at most 2000 bytes; `https`, or `http` only on a loopback host
/// (RFC 8252 §7.3); public (native) clients may also use a private-use scheme
/// with a dot in it (RFC 8252 §7.1, e.g. `com.example.app:/cb`). Matching at the
/// authorize endpoint is by exact string comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String")]
pub struct RedirectUri(String);
string_newtype!(RedirectUri);

impl RedirectUri {
    pub fn parse(input: &str, kind: ClientKind) -> Result<Self, ParseError> {
        const F: &str = "redirect_uri";
        if input.len() > 2000 {
            return Err(err(F, "must be at most 2000 characters"));
        }
        let url = url::Url::parse(input).map_err(|e| err(F, format!("{input:?} is not an absolute URI ({e})")))?;
        if url.fragment().is_some() || input.contains('#') {
            return Err(err(F, format!("{input:?} must not contain a fragment (RFC 6749 §3.1.2)")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err(F, format!("{input:?} must not contain credentials")));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(err(
                    F,
                    format!(
                        "{input:?} uses plain http on a non-loopback host; use https (http is allowed only for 127.0.0.1, [::1] and localhost)"
                    ),
                ));
            }
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
                return Err(err(F, format!("{input:?} uses a forbidden scheme")));
            }
            scheme if kind == ClientKind::Public && scheme.contains('.') => {}
            scheme => {
                return Err(err(
                    F,
                    format!(
                        "{input:?}: scheme {scheme:?} is not allowed (https, loopback http, or for public clients a private-use scheme such as com.example.app)"
                    ),
                ));
            }
        }
        Ok(Self(input.to_owned()))
    }
}

/// Whether a URL's host is the loopback interface (RFC 8252 §7.3).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// RFC 8707 §2: an absolute URI without a fragment (bounded).
pub fn is_resource_indicator(r: &str) -> bool {
    r.len() <= 512 && url::Url::parse(r).is_ok_and(|u| u.fragment().is_none())
}

/// Where a request came from, as the edge saw it: the source address (after
/// the trusted-proxy rule) and the user agent. Core services record it in
/// audit events; they never see the HTTP request itself.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn ip_addr(&self) -> Option<std::net::IpAddr> {
        self.ip.as_deref().and_then(|i| i.parse().ok())
    }
}

/// Splits `application/x-www-form-urlencoded` bytes into pairs, strictly:
/// percent-escapes must decode to valid UTF-8 (no silent replacement).
pub fn parse_pairs(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let decode = |part: &[u8]| -> Result<String, String> {
        let plus: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
        String::from_utf8(bytes).map_err(|_| "a field is not valid UTF-8".to_owned())
    };
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_keyed_case_insensitively() {
        let u = Username::parse("  Alice ").unwrap();
        assert_eq!(u.as_str(), "Alice");
        assert_eq!(u.key(), "alice");
        // NFKC folds the full-width form onto ASCII.
        assert_eq!(Username::parse("Ａｌｉｃｅ").unwrap().key(), "alice");
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse(".").is_err() && Username::parse("..").is_err());
        assert_eq!(Username::parse("a.b").unwrap().key(), "a.b");
        assert!(Username::parse("<script>").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("jürgen.o'neil").is_err());
        assert!(Username::parse("jürgen.m@example.com").is_ok());
    }

    #[test]
    fn redirect_uris_follow_rfc_6749_and_8252() {
        let c = ClientKind::Confidential;
        let p = ClientKind::Public;
        assert!(RedirectUri::parse("https://app.example.com/cb", c).is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:9000/cb", c).is_ok());
        assert!(RedirectUri::parse("http://localhost/cb", c).is_ok());
        assert!(RedirectUri::parse("http://[::1]:1/cb", c).is_ok());
        assert!(RedirectUri::parse("http://app.example.com/cb", c).is_err());
        assert!(RedirectUri::parse("http://app.example.com/cb", p).is_err());
        assert!(RedirectUri::parse("https://app.example.com/cb#x", c).is_err());
        assert!(RedirectUri::parse("/cb", c).is_err());
        assert!(RedirectUri::parse("cb", c).is_err());
        assert!(RedirectUri::parse("javascript:alert(1)", p).is_err());
        assert!(RedirectUri::parse("com.example.app:/cb", p).is_ok());
        assert!(RedirectUri::parse("com.example.app:/cb", c).is_err());
        assert!(RedirectUri::parse("https://u:p@app.example.com/cb", c).is_err());
    }

    #[test]
    fn scopes_follow_rfc_6749_section_3_3() {
        assert!(Scope::parse("openid").is_ok());
        assert!(Scope::parse("api:read").is_ok());
        assert!(Scope::parse("a b").is_err());
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("a\\b").is_err());
        assert!(Scope::parse("").is_err());
    }

    #[test]
    fn client_ids_and_roles_are_restricted_to_safe_characters() {
        assert!(ClientId::parse("my-app_1.0~x").is_ok());
        assert!(ClientId::parse("a:b").is_err());
        assert!(ClientId::parse("").is_err());
        assert!(RoleName::parse("billing:admin").is_ok());
        assert!(RoleName::parse("Admin").is_err());
        assert!(GrantType::parse("password").is_err());
        assert!(SigningAlg::parse("none").is_err());
        assert!(SigningAlg::parse("HS256").is_err());
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(Email::parse("a@example.com").is_ok());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("ab.com").is_err());
        assert!(Email::parse("a b@c.com").is_err());
        for tricky in ["x<victim@ex.com>", "<victim@ex.com>", "victim@ex.com(1)", "a@b.co>", "a,b@ex.com", "a@b@ex.com"]
        {
            assert!(Email::parse(tricky).is_err(), "{tricky}");
        }
    }
}
