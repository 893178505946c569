//! The admin JSON API, `/admin/api/v1/…`, and its OpenAPI document at
//! `/admin/api/openapi.json` (generated from these handlers by utoipa). Callers present a Portcullis access token whose audience is
//! `{issuer}/admin`; their permissions come from their roles at the time of
//! the call (see `policy`), so revoking a role takes effect at once.
//! Errors are RFC 9457 problem documents naming the offending field.

mod audit;
mod caller;
mod clients;
mod user_endpoints;

pub use audit::*;
use caller::*;
pub use caller::{AdminCaller, Caller, Needs};
pub use clients::*;
pub use user_endpoints::*;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, delete, get, patch, post, put, web};
use sea_orm::{EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::clients::ClientView;
use crate::admin::roles::RoleView;
use crate::admin::users::UserView;
use crate::admin::{Actor, AdminError, users};
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::entities::{audit_event, user};
use crate::tokens::keys::KeyView;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_users)
        .service(get_user)
        .service(create_user)
        .service(list_audit)
        .service(disable_user)
        .service(enable_user)
        .service(unlock_user)
        .service(reset_mfa)
        .service(invite_user)
        .service(reset_link)
        .service(list_upstream)
        .service(remove_upstream)
        .service(list_passkeys)
        .service(remove_passkey)
        .service(set_password)
        .service(grant_role)
        .service(revoke_role)
        .service(set_attribute)
        .service(revoke_sessions)
        .service(delete_user)
        .service(list_roles)
        .service(create_role)
        .service(list_clients)
        .service(get_client)
        .service(delete_client)
        .service(rotate_client_secret)
        .service(list_keys)
        .service(rotate_keys)
        .service(create_registration_token)
        .service(update_user)
        .service(list_sessions)
        .service(create_client)
        .service(update_client)
        .service(revoke_all_sessions)
        .service(openapi_json);
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    field: Option<&'static str>,
    /// RFC 9470: the user must authenticate again, at most this long ago.
    step_up_max_age: Option<i64>,
    /// RFC 9470: the user must authenticate again, this strongly.
    step_up_acr: Option<crate::policy::Assurance>,
    /// RFC 6750 §3.1: a request without a token gets a challenge without
    /// an error code.
    no_token: bool,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            field: None,
            step_up_max_age: None,
            step_up_acr: None,
            no_token: false,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "type": "about:blank", "title": self.title, "status": self.status.as_u16(), "detail": self.detail });
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        let mut r = HttpResponse::build(self.status);
        if let Some(max) = self.step_up_max_age {
            r.insert_header((
                "WWW-Authenticate",
                format!("Bearer error=\"insufficient_user_authentication\", error_description=\"a more recent authentication is required\", max_age={max}"),
            ));
        } else if let Some(need) = self.step_up_acr {
            r.insert_header((
                "WWW-Authenticate",
                format!(
                    "Bearer error=\"insufficient_user_authentication\", error_description=\"a stronger authentication is required\", acr_values=\"{}\"",
                    need.acr()
                ),
            ));
        } else if self.no_token {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        } else if self.status == StatusCode::UNAUTHORIZED {
            r.insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""));
        }
        r.content_type("application/problem+json").body(body.to_string())
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(p) => {
                Self { field: Some(p.field), ..Self::new(StatusCode::BAD_REQUEST, "Invalid field", p.reason) }
            }
            AdminError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "Not found", e.to_string()),
            AdminError::Exists { .. } => Self::new(StatusCode::CONFLICT, "Already exists", e.to_string()),
            AdminError::Refused(m) => Self::new(StatusCode::BAD_REQUEST, "Refused", m),
            AdminError::Forbidden(p) => {
                Self::new(StatusCode::FORBIDDEN, "Forbidden", format!("missing permission {p}"))
            }
            AdminError::ForbiddenTarget(m) => Self::new(StatusCode::FORBIDDEN, "Forbidden", m),
            AdminError::Damaged(d) => {
                tracing::error!(error = %d, "a stored record does not parse");
                Self {
                    field: Some(d.field),
                    ..Self::new(
                        StatusCode::CONFLICT,
                        "Stored value does not parse",
                        format!(
                            "the stored {} of this {} does not parse; set it anew with this change",
                            d.field, d.record
                        ),
                    )
                }
            }
            AdminError::Password(crate::authn::PasswordError::Policy(m)) => {
                Self { field: Some("password"), ..Self::new(StatusCode::BAD_REQUEST, "Invalid field", m) }
            }
            AdminError::Password(crate::authn::PasswordError::Busy) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Busy", "try again shortly")
            }
            other => {
                // The whole cause chain for the operator; a fixed text for the caller.
                tracing::error!(error = %crate::error::chain(&other), "admin API failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "the request could not be completed")
            }
        }
    }
}

impl From<sea_orm::DbErr> for Problem {
    fn from(e: sea_orm::DbErr) -> Self {
        AdminError::Db(e).into()
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Part of the username to look for.
    search: Option<String>,
    /// Page number, from 0 (at most 1000000).
    page: Option<u64>,
    /// Items per page, 1 to 200 (default 50).
    per_page: Option<u64>,
}

fn bounds(p: &Paging) -> Result<(u64, u64), Problem> {
    let per = p.per_page.unwrap_or(50);
    if per == 0 || per > 200 {
        return Err(Problem {
            field: Some("per_page"),
            ..Problem::new(StatusCode::BAD_REQUEST, "Invalid field", "per_page must be 1 to 200")
        });
    }
    let page = p.page.unwrap_or(0);
    if page > 1_000_000 {
        return Err(Problem {
            field: Some("page"),
            ..Problem::new(StatusCode::BAD_REQUEST, "Invalid field", "page is too large")
        });
    }
    Ok((page, per))
}

/// Parses a JSON body strictly (unknown fields refused) into `T`.
/// The body must be a JSON object: serde would otherwise also read a struct
/// from an array (`[null, null]`), position by position.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Problem> {
    let invalid = |e: String| Problem::new(StatusCode::BAD_REQUEST, "Invalid body", e);
    let v: Value = serde_json::from_slice(raw)
        .map_err(|e| invalid(format!("the body is not valid JSON (line {}, column {})", e.line(), e.column())))?;
    if !v.is_object() {
        return Err(invalid("the body must be a JSON object".into()));
    }
    serde_path_to_error::deserialize(v).map_err(|e| invalid(body_error(&e)))
}

/// What was wrong with a body, in our words: the field and the kind of
/// mistake, not serde's message.
fn body_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let quoted = |s: &str| s.split('`').nth(1).unwrap_or_default().to_owned();
    if inner.starts_with("unknown field") {
        format!("`{}` is not a field of this request", quoted(&inner))
    } else if inner.starts_with("missing field") {
        let name = quoted(&inner);
        if path == "." { format!("`{name}` is required") } else { format!("`{path}.{name}` is required") }
    } else {
        format!("`{path}` has the wrong type or value")
    }
}

/// The OpenAPI document, built once.
#[get("/admin/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        use utoipa::OpenApi;
        ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".to_owned())
    });
    HttpResponse::Ok().content_type("application/json").body(doc.clone())
}

// ---- response documents -------------------------------------------------

/// An RFC 9457 problem document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProblemDoc {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// The request field at fault, for validation errors.
    field: Option<String>,
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The admin API's OpenAPI 3.1 document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin API",
        version = "1",
        description = "Bearer access tokens with audience `{issuer}/admin`; each operation names the permission it needs. Errors are RFC 9457 problem documents."
    ),
    paths(
        list_users, get_user, create_user, update_user, disable_user, enable_user, unlock_user, reset_mfa, invite_user, reset_link, list_upstream, remove_upstream, list_passkeys, remove_passkey, set_password,
        grant_role, revoke_role, set_attribute, list_sessions, revoke_sessions, delete_user, revoke_all_sessions, list_roles, create_role, list_clients,
        get_client, create_client, update_client, delete_client, rotate_client_secret, create_registration_token, list_keys, rotate_keys, list_audit
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

#[cfg(test)]
mod body_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        username: String,
        scopes: Option<Vec<String>>,
    }

    fn detail(raw: &str) -> String {
        body::<Sample>(raw.as_bytes()).unwrap_err().detail
    }

    #[test]
    fn a_bad_body_is_named_in_our_words() {
        assert_eq!(detail("{\"username\": "), "the body is not valid JSON (line 1, column 13)");
        assert_eq!(detail("[1]"), "the body must be a JSON object");
        assert_eq!(detail("{\"username\": \"a\", \"isAdmin\": true}"), "`isAdmin` is not a field of this request");
        assert_eq!(detail("{}"), "`username` is required");
        assert_eq!(detail("{\"username\": \"a\", \"scopes\": [\"x\", 5]}"), "`scopes[1]` has the wrong type or value");
    }
}
