//! The address and phone claims of a user (OIDC Core §5.1), parsed at the
//! edge like every other profile field.

use serde::{Deserialize, Serialize};

use super::ParseError;

fn err(field: &'static str, reason: &str) -> ParseError {
    ParseError { field, reason: reason.to_owned() }
}

/// A phone number: `+`, digits, spaces, dots, dashes and parentheses, with
/// 5 to 20 digits (E.164 allows 15; room for an extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let s = input.trim();
        let digits = s.chars().filter(char::is_ascii_digit).count();
        if s.len() > 32 || !(5..=20).contains(&digits) || !s.chars().all(|c| c.is_ascii_digit() || " +-.()".contains(c))
        {
            return Err(err("phone_number", "must be a phone number such as +1 555 0100 (digits, spaces, + - . ( ))"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A postal address (OIDC Core §5.1.1): every member optional, each at most
/// 256 characters without control characters (`formatted` may span lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Address {
    /// From JSON: an object with the members below and nothing else (serde
    /// alone would also take an array for a struct).
    pub fn from_json(v: serde_json::Value) -> Result<Self, ParseError> {
        let shape = || {
            err("address", "must be an object with formatted, street_address, locality, region, postal_code or country")
        };
        if !v.is_object() {
            return Err(shape());
        }
        serde_json::from_value(v).map_err(|_| shape())
    }

    /// From form fields (account page, admin page): blank fields are absent.
    pub fn from_fields(
        street_address: Option<String>,
        locality: Option<String>,
        region: Option<String>,
        postal_code: Option<String>,
        country: Option<String>,
    ) -> Self {
        let keep = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        Self {
            formatted: None,
            street_address: keep(street_address),
            locality: keep(locality),
            region: keep(region),
            postal_code: keep(postal_code),
            country: keep(country),
        }
    }

    /// Checks every member; an address with no member is none at all.
    pub fn checked(self) -> Result<Option<Self>, ParseError> {
        let members = [
            (&self.formatted, true),
            (&self.street_address, true),
            (&self.locality, false),
            (&self.region, false),
            (&self.postal_code, false),
            (&self.country, false),
        ];
        for (value, multiline) in members {
            if let Some(v) = value
                && (v.chars().count() > 256 || v.chars().any(|c| c.is_control() && !(multiline && c == '\n')))
            {
                return Err(err("address", "each part must be at most 256 characters without control characters"));
            }
        }
        Ok(members.iter().any(|(v, _)| v.as_ref().is_some_and(|s| !s.trim().is_empty())).then_some(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_and_addresses_are_checked() {
        assert!(PhoneNumber::parse("+1 (555) 010-0100").is_ok());
        for bad in ["1234", "+1 555 CALL", "+1\n555 0100", &"9".repeat(25)] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?}");
        }
        let a = Address { locality: Some("Utrecht".into()), country: Some("NL".into()), ..Default::default() };
        assert!(a.checked().unwrap().is_some());
        assert!(Address::default().checked().unwrap().is_none());
        let bad = Address { region: Some("a\u{1b}[2J".into()), ..Default::default() };
        assert!(bad.checked().is_err());
        assert!(Address::from_json(serde_json::json!([null, null])).is_err(), "an array is no address");
        assert!(Address::from_json(serde_json::json!({ "planet": "Mars" })).is_err());
        assert!(Address::from_json(serde_json::json!({ "country": "NL" })).is_ok());
    }
}
