//! `StrictForm<T>`: a urlencoded form where a repeated field is an error
//! (serde's default takes one of them silently — RFC 6749 §3.1 and common sense
//! say a duplicated parameter must be refused, not guessed).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::pages::error_page;

pub struct StrictForm<T>(pub T);

impl<T> StrictForm<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for StrictForm<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Longest form body accepted (bytes).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

pub use crate::domain::parse_pairs;

/// Parses pairs into `T`, refusing repeated names. Used by the browser forms
/// and the protocol endpoints alike.
pub fn from_pairs<T: DeserializeOwned>(pairs: Vec<(String, String)>) -> Result<T, String> {
    let mut seen = HashSet::new();
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        if !seen.insert(k.clone()) {
            return Err(format!("parameter {k:?} is repeated"));
        }
        map.insert(k, serde_json::Value::String(v));
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
}

fn too_large() -> actix_web::Error {
    let page = error_page(StatusCode::PAYLOAD_TOO_LARGE, "Too large", "The form is larger than this site accepts.");
    actix_web::error::InternalError::from_response("form too large", page).into()
}

fn bad_form() -> actix_web::Error {
    let page = error_page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The form could not be read. Go back, reload the page and try again.",
    );
    actix_web::error::InternalError::from_response("bad form", page).into()
}

impl<T: DeserializeOwned + 'static> FromRequest for StrictForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_form =
            req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_form {
                return Err(bad_form());
            }
            let body = body.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    bad_form()
                }
            })?;
            if body.len() > MAX_FORM_BYTES {
                return Err(too_large());
            }
            parse_pairs(&body).and_then(from_pairs).map(StrictForm).map_err(|reason| {
                tracing::debug!(%reason, "rejected form");
                bad_form()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct F {
        a: String,
        b: Option<String>,
    }

    #[test]
    fn forms_decode_strictly() {
        let pairs = parse_pairs(b"a=x+y%21&b=%C3%A9").unwrap();
        assert_eq!(from_pairs::<F>(pairs).unwrap(), F { a: "x y!".into(), b: Some("é".into()) });
        assert!(parse_pairs(b"a=%FF").is_err(), "invalid UTF-8");
        assert!(from_pairs::<F>(parse_pairs(b"a=1&a=2").unwrap()).is_err(), "repeated");
        assert!(from_pairs::<F>(parse_pairs(b"b=1").unwrap()).is_err(), "missing");
        assert_eq!(from_pairs::<F>(parse_pairs(b"a=").unwrap()).unwrap().a, "");
    }
}

/// The profile fields of the account page's and the admin user page's forms
/// (flattened into each): one reading of them for both.
#[derive(serde::Deserialize)]
pub struct ProfileFields {
    name: Option<String>,
    phone: Option<String>,
    street_address: Option<String>,
    locality: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

impl ProfileFields {
    /// The change the form asks for: every field is set, and a blank one
    /// clears its value; the e-mail address as the caller decides.
    pub fn into_patch(self, email: Option<Option<String>>) -> crate::admin::users::ProfilePatch {
        let address = crate::domain::Address::from_fields(
            self.street_address,
            self.locality,
            self.region,
            self.postal_code,
            self.country,
        );
        crate::admin::users::ProfilePatch {
            email,
            name: Some(blank_is_none(self.name)),
            phone_number: Some(blank_is_none(self.phone)),
            address: Some(Some(address)),
        }
    }
}

/// A form value, trimmed; blank is none.
pub fn blank_is_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A form whose CSRF token the edge checks before the handler runs.
pub trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// Implements [`CsrfForm`] for forms with a `csrf` field.
macro_rules! csrf_form {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::web::form::CsrfForm for $t {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )*};
}
pub(crate) use csrf_form;

/// The signed-in person behind a state-changing form: the session (else the
/// login page), then the form's CSRF token (else "this form has expired"),
/// checked in that order before the handler runs, so a handler that takes
/// one cannot forget either.
pub struct SignedInForm<T> {
    pub cur: crate::session::Current,
    pub form: T,
}

impl<T: DeserializeOwned + CsrfForm + 'static> FromRequest for SignedInForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = StrictForm::<T>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let form = form.await?.into_inner();
            let state = req
                .app_data::<web::Data<crate::state::AppState>>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("the application state is missing"))?;
            match super::account::session_for_form(&state, &req, form.csrf()).await? {
                Ok(cur) => Ok(Self { cur, form }),
                Err(answer) => Err(actix_web::error::InternalError::from_response("refused form", answer).into()),
            }
        })
    }
}
