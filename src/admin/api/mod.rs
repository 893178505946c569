//! The admin JSON API, `/admin/api/v1/…`, and its OpenAPI document at
//! `/admin/api/openapi.json` (generated from these handlers by utoipa). Callers present a Portcullis access token whose audience is
//! `{issuer}/admin`; their permissions come from their roles at the time of
//! the call (see `policy`), so revoking a role takes effect at once.
//! Errors are RFC 9457 problem documents naming the offending field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, delete, get, patch, post, put, web};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::clients::ClientView;
use crate::admin::roles::RoleView;
use crate::admin::users::UserView;
use crate::admin::{Actor, AdminError, users};
use crate::policy::{Permission, Principal, permissions_of};
use crate::state::AppState;
use crate::storage::entities::{audit_event, user};
use crate::storage::{AuditEvent, record_audit};
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
    /// RFC 9470: the user must authenticate again with a second factor.
    step_up_acr: bool,
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
            step_up_acr: false,
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
        } else if self.step_up_acr {
            r.insert_header((
                "WWW-Authenticate",
                "Bearer error=\"insufficient_user_authentication\", error_description=\"a second factor is required\", acr_values=\"2\"",
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
            AdminError::Password(crate::authn::PasswordError::Policy(m)) => {
                Self { field: Some("password"), ..Self::new(StatusCode::BAD_REQUEST, "Invalid field", m) }
            }
            AdminError::Password(crate::authn::PasswordError::Busy) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Busy", "try again shortly")
            }
            other => {
                tracing::error!(error = %other, "admin API failure");
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

fn unauthorized() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "a valid admin access token is required")
}

/// The audience of tokens for this API.
pub fn audience(state: &AppState) -> String {
    format!("{}/admin", state.settings.issuer())
}

/// The caller, authenticated; failures are audited.
async fn principal(state: &AppState, req: &HttpRequest) -> Result<Principal, Problem> {
    // Failed authentications count against the address like at the token
    // endpoint; over the limit, 429 before any work (and no audit write).
    let gate = crate::oauth::cache::FailureGate::new(state, req);
    if gate.blocked() {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "too many failed attempts from this address",
        ));
    }
    let p = authenticate(state, req).await;
    if let Err(e) = &p
        && e.status == StatusCode::UNAUTHORIZED
    {
        gate.failed();
        audit_refusal(state, req, "admin_api.unauthorized", None, None).await;
    }
    p
}

/// A refused admin-API call, for the audit log (V16.3): who (if known), which
/// permission was missing, the method and path, and from where. Best effort:
/// a failure to write it must not turn a 401/403 into a 500.
async fn audit_refusal(
    state: &AppState,
    req: &HttpRequest,
    event: &'static str,
    p: Option<&Principal>,
    perm: Option<Permission>,
) {
    let mut e = AuditEvent::new(event, "failure")
        .source(crate::web::client_info::ip(state, req), crate::web::client_info::user_agent(req))
        .detail(
            json!({ "method": req.method().as_str(), "path": req.path(), "permission": perm.map(Permission::as_str) }),
        );
    if let Some(p) = p {
        e = e.actor(format!("{}:{}", if p.is_client { "client" } else { "user" }, p.subject));
    }
    if let Err(err) = record_audit(&state.db, e, state.clock.now()).await {
        tracing::warn!(error = %err, "could not audit a refused admin call");
    }
}

/// The principal's capability for `perm`, or 403 (audited).
async fn require<'a>(
    state: &AppState,
    req: &HttpRequest,
    p: &'a Principal,
    perm: Permission,
) -> Result<crate::policy::Capability<'a>, Problem> {
    match p.authorize(perm) {
        Ok(c) => Ok(c),
        Err(e) => {
            audit_refusal(state, req, "admin_api.forbidden", Some(p), Some(perm)).await;
            Err(forbidden(e))
        }
    }
}

/// Authenticates the caller and loads their current permissions.
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, Problem> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Problem { no_token: true, ..unauthorized() })?;
    let claims = crate::oauth::token::check_access_token(state, token.trim()).await.map_err(|_| unauthorized())?;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == audience(state),
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience(state).as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(unauthorized());
    }
    let sub = claims.get("sub").and_then(Value::as_str).ok_or_else(unauthorized)?.to_owned();
    let client_id = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
    // A client acting for itself (client_credentials: sub = client_id, no
    // user login behind it) is never mistaken for a user, even if a client
    // were registered under an id that equals some user's UUID.
    let acting_for_itself = sub == client_id && claims.get("auth_time").is_none();
    if acting_for_itself {
        return match state.clients.get(&state.db, client_id).await? {
            Some(c) => Ok(Principal {
                subject: sub,
                is_client: true,
                permissions: permissions_of(&c.roles),
                roles: c.roles.clone(),
                auth_time: None,
            }),
            None => Err(unauthorized()),
        };
    }
    if let Some(u) = user::Entity::find_by_id(sub.as_str()).one(&state.db).await? {
        if u.disabled {
            return Err(unauthorized());
        }
        // The same second-factor rule as the admin pages: a password-only
        // login never administers, whatever the MFA policy says of its roles.
        let amr: Vec<String> = claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if !crate::policy::has_second_factor(&amr) {
            return Err(Problem {
                step_up_acr: true,
                ..Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "Second factor required",
                    "the admin API needs a login with a second factor; sign in again with two-step verification",
                )
            });
        }
        let roles = crate::storage::roles_of(&state.db, &u.id).await?;
        let auth_time = claims.get("auth_time").and_then(Value::as_i64);
        return Ok(Principal { subject: sub, is_client: false, permissions: permissions_of(&roles), roles, auth_time });
    }
    Err(unauthorized())
}

fn actor(state: &AppState, req: &HttpRequest, p: &Principal) -> Actor {
    Actor::for_principal(p, crate::web::client_info::ip(state, req), crate::web::client_info::user_agent(req))
}

fn forbidden(e: crate::policy::Denied) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string())
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

#[utoipa::path(tag = "users", description = "Needs `users:read`.", params(Paging), responses((status = 200, body = UserPage), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Paging>,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = require(&state, &req, &p, Permission::UsersRead).await?;
    let (page, per) = bounds(&q)?;
    let mut find = user::Entity::find().order_by_asc(user::Column::UsernameKey);
    if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
        find = find.filter(crate::storage::contains_literally(user::Column::UsernameKey, &s.to_lowercase()));
    }
    let pages = find.paginate(&state.db, per);
    let total = pages.num_items().await?;
    let mut out = Vec::new();
    for u in pages.fetch_page(page).await? {
        out.push(users::show(&state, &u.username).await?);
    }
    Ok(HttpResponse::Ok().json(UserPage { items: out, page, per_page: per, total }))
}

#[utoipa::path(tag = "users", description = "Needs `users:read`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users/{username}")]
pub async fn get_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = require(&state, &req, &p, Permission::UsersRead).await?;
    Ok(HttpResponse::Ok().json(users::show(&state, &path).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    username: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Optional initial password (checked against the password policy).
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<secrecy::SecretString>,
}

#[utoipa::path(tag = "users", description = "Needs `users:write (and roles:write to grant roles)`.", request_body = NewUserBody, responses((status = 201, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "The username is taken", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = require(&state, &req, &p, Permission::UsersWrite).await?;
    let b: NewUserBody = self::body(&body)?;
    if !b.roles.is_empty() {
        // Granting roles hands out permissions: it needs roles:write too.
        require(&state, &req, &p, Permission::RolesWrite).await?;
    }
    let new = users::NewUser::parse(&b.username, b.email.as_deref(), b.name.as_deref(), &b.roles, b.password)?;
    let view = users::create(&state, &actor(&state, &req, &p), new).await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A user id (the `sub`).
    user: Option<String>,
    /// An event type, e.g. `login.failed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    since: Option<String>,
    /// Only events before this instant (RFC 3339).
    until: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

fn instant(field: &'static str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    v.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&chrono::Utc)).map_err(|_| Problem {
            field: Some(field),
            ..Problem::new(StatusCode::BAD_REQUEST, "Invalid field", format!("{field} must be an RFC 3339 date-time"))
        })
    })
    .transpose()
}

#[utoipa::path(tag = "audit", description = "Needs `audit:read`.", params(AuditQuery), responses((status = 200, body = AuditPage), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = require(&state, &req, &p, Permission::AuditRead).await?;
    let (page, per) = bounds(&Paging { search: None, page: q.page, per_page: q.per_page })?;
    let mut find = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
    if let Some(u) = &q.user {
        find = find.filter(audit_event::Column::UserId.eq(u.as_str()));
    }
    if let Some(t) = &q.event_type {
        find = find.filter(audit_event::Column::EventType.eq(t.as_str()));
    }
    if let Some(t) = instant("since", q.since.as_deref())? {
        find = find.filter(audit_event::Column::At.gte(t));
    }
    if let Some(t) = instant("until", q.until.as_deref())? {
        find = find.filter(audit_event::Column::At.lt(t));
    }
    let items: Vec<AuditItem> =
        find.paginate(&state.db, per).fetch_page(page).await?.into_iter().map(AuditItem::from).collect();
    Ok(HttpResponse::Ok().json(AuditPage { items, page, per_page: per }))
}

/// Parses a JSON body strictly (unknown fields refused) into `T`.
/// The body must be a JSON object: serde would otherwise also read a struct
/// from an array (`[null, null]`), position by position.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Problem> {
    let invalid = |e: String| Problem::new(StatusCode::BAD_REQUEST, "Invalid body", e);
    let v: Value = serde_json::from_slice(raw).map_err(|e| invalid(e.to_string()))?;
    if !v.is_object() {
        return Err(invalid("the body must be a JSON object".into()));
    }
    serde_json::from_value(v).map_err(|e| invalid(e.to_string()))
}

/// Authenticates, checks one permission, and returns the audit actor.
/// Credential changes made with a user's token also need that user's
/// authentication to be recent (RFC 9470 step-up challenge otherwise);
/// service clients authenticate themselves at every token request.
async fn gate(state: &AppState, req: &HttpRequest, perm: Permission) -> Result<Actor, Problem> {
    let p = principal(state, req).await?;
    require(state, req, &p, perm).await?;
    if perm == Permission::UsersCredentials && !p.is_client {
        let max = state.settings.admin_reauth_secs;
        let fresh = p.auth_time.is_some_and(|t| state.clock.now().timestamp() - t <= max);
        if !fresh {
            audit_refusal(state, req, "admin_api.reauth_required", Some(&p), Some(perm)).await;
            return Err(Problem {
                step_up_max_age: Some(max),
                ..Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "Recent authentication required",
                    format!("credential changes need a login at most {max} s old; get a new token (max_age={max})"),
                )
            });
        }
    }
    Ok(actor(state, req, &p))
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/disable")]
pub async fn disable_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    Ok(HttpResponse::Ok().json(users::set_disabled(&state, &a, &path, true).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/enable")]
pub async fn enable_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    Ok(HttpResponse::Ok().json(users::set_disabled(&state, &a, &path, false).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/unlock")]
pub async fn unlock_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersCredentials).await?;
    Ok(HttpResponse::Ok().json(users::unlock(&state, &a, &path).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/reset-mfa")]
pub async fn reset_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersCredentials).await?;
    Ok(HttpResponse::Ok().json(users::reset_mfa(&state, &a, &path).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[schema(value_type = String, format = Password)]
    password: secrecy::SecretString,
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`.", params(("username" = String, Path, description = "The username")), request_body = PasswordBody, responses((status = 204, description = "Password set; the user's sessions ended"), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/password")]
pub async fn set_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersCredentials).await?;
    let b: PasswordBody = body(&raw)?;
    users::set_password(&state, &a, &path, &b.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

#[utoipa::path(tag = "users", description = "Needs `roles:write`.", params(("username" = String, Path, description = "The username")), request_body = RoleBody, responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/roles")]
pub async fn grant_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::RolesWrite).await?;
    let b: RoleBody = body(&raw)?;
    Ok(HttpResponse::Ok().json(users::grant(&state, &a, &path, &b.role).await?))
}

#[utoipa::path(tag = "users", description = "Needs `roles:write`.", params(("username" = String, Path, description = "The username"), ("role" = String, Path, description = "The role")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}/roles/{role}")]
pub async fn revoke_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::RolesWrite).await?;
    let (username, role) = path.into_inner();
    Ok(HttpResponse::Ok().json(users::revoke(&state, &a, &username, &role).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    value: String,
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username"), ("key" = String, Path, description = "The attribute key")), request_body = ValueBody, responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[put("/admin/api/v1/users/{username}/attributes/{key}")]
pub async fn set_attribute(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    let (username, key) = path.into_inner();
    let b: ValueBody = body(&raw)?;
    Ok(HttpResponse::Ok().json(users::set_attribute(&state, &a, &username, &key, &b.value).await?))
}

#[utoipa::path(tag = "sessions", description = "Needs `sessions:revoke`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = SessionsEnded), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}/sessions")]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::SessionsRevoke).await?;
    let sessions_ended = users::end_sessions(&state, &a, &path).await?;
    Ok(HttpResponse::Ok().json(SessionsEnded { sessions_ended }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserErased {
    /// The pseudonym the audit trail now uses for the erased user.
    pseudonym: String,
}

#[utoipa::path(tag = "users", description = "Needs `users:write`. Erasure (GDPR art. 17): sessions and refresh tokens end (back-channel logouts), the account and its credentials, roles, attributes and consents are deleted, and the audit trail keeps the user's events under a pseudonym.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserErased), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    let pseudonym = users::delete(&state, &a, &path).await?;
    Ok(HttpResponse::Ok().json(UserErased { pseudonym }))
}

#[utoipa::path(tag = "roles", description = "Needs `users:read`.", responses((status = 200, body = Vec<RoleView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/roles")]
pub async fn list_roles(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::UsersRead).await?;
    Ok(HttpResponse::Ok().json(crate::admin::roles::list(&state).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoleBody {
    name: String,
    description: Option<String>,
}

#[utoipa::path(tag = "roles", description = "Needs `roles:write`.", request_body = NewRoleBody, responses((status = 201, body = RoleView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "The role exists", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/roles")]
pub async fn create_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::RolesWrite).await?;
    let b: NewRoleBody = body(&raw)?;
    Ok(HttpResponse::Created().json(crate::admin::roles::add(&state, &a, &b.name, b.description.as_deref()).await?))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:read`.", responses((status = 200, body = Vec<ClientView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/clients")]
pub async fn list_clients(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::ClientsRead).await?;
    Ok(HttpResponse::Ok().json(crate::admin::clients::list(&state).await?))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:read`.", params(("client_id" = String, Path, description = "The client id")), responses((status = 200, body = ClientView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/clients/{client_id}")]
pub async fn get_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::ClientsRead).await?;
    Ok(HttpResponse::Ok().json(crate::admin::clients::show(&state, &path).await?))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write`.", params(("client_id" = String, Path, description = "The client id")), responses((status = 204, description = "Deleted; its refresh and access tokens stop working"), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/clients/{client_id}")]
pub async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::ClientsWrite).await?;
    crate::admin::clients::remove(&state, &a, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write`.", params(("client_id" = String, Path, description = "The client id")), responses((status = 200, body = ClientSecret), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/clients/{client_id}/rotate-secret")]
pub async fn rotate_client_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::ClientsWrite).await?;
    let created = crate::admin::clients::rotate_secret(&state, &a, &path).await?;
    // Shown once, like the CLI; the response must not be cached.
    Ok(secret_response(StatusCode::OK, created))
}

#[utoipa::path(tag = "keys", description = "Needs `keys:rotate`.", responses((status = 200, body = Vec<KeyView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/keys")]
pub async fn list_keys(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::KeysRotate).await?;
    Ok(HttpResponse::Ok().json(crate::tokens::keys::list(&state).await?))
}

#[utoipa::path(tag = "keys", description = "Needs `keys:rotate`.", responses((status = 200, body = Vec<KeyView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/keys/rotate")]
pub async fn rotate_keys(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::KeysRotate).await?;
    let keys = crate::tokens::keys::rotate(&state, &a).await?;
    state.reload_keys().await.map_err(|e| AdminError::Refused(e.to_string()))?;
    Ok(HttpResponse::Ok().json(keys))
}

/// A client's secret, shown once; never cached.
fn secret_response(status: StatusCode, created: crate::admin::clients::Created) -> HttpResponse {
    use secrecy::ExposeSecret;
    let body = ClientSecret {
        client_secret: created.secret.as_ref().map(|s| s.expose_secret().to_owned()),
        client: created.client,
    };
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(body)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new e-mail address; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// A new display name; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// A new phone number (OIDC `phone_number`); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    phone_number: Option<Option<String>>,
    /// A new postal address (OIDC `address`); `null` removes it.
    #[serde(default, deserialize_with = "present_address")]
    #[schema(value_type = Option<crate::domain::Address>)]
    address: Option<Option<crate::domain::Address>>,
}

fn present_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<crate::domain::Address>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(Some(None)),
        Some(v) => crate::domain::Address::from_json(v).map(|a| Some(Some(a))).map_err(serde::de::Error::custom),
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username")),
    request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[patch("/admin/api/v1/users/{username}")]
pub async fn update_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    let b: UserPatch = body(&raw)?;
    let patch = users::ProfilePatch { email: b.email, name: b.name, phone_number: b.phone_number, address: b.address };
    Ok(HttpResponse::Ok().json(users::update_profile(&state, &a, &path, patch).await?))
}

#[utoipa::path(tag = "sessions", description = "Needs `users:read`. The user's live browser sessions, newest first.",
    params(("username" = String, Path, description = "The username")),
    responses((status = 200, body = Vec<SessionView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users/{username}/sessions")]
pub async fn list_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::UsersRead).await?;
    let u = users::show(&state, &path).await?;
    let rows = crate::session::list_for_user(&state, &state.db, &u.id, state.clock.now()).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(SessionView::from).collect::<Vec<_>>()))
}

/// A client registration over the API: the fields of `portcullis client add`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    client_id: String,
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    /// Default: authorization_code and refresh_token.
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Roles of the client itself (client_credentials); needs `roles:write` too.
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    first_party: bool,
    /// `required` (default) or `optional`.
    pkce: Option<String>,
    id_token_alg: Option<String>,
    #[serde(default)]
    require_mfa: bool,
    backchannel_logout_uri: Option<String>,
    /// A JWK Set (public keys) for private_key_jwt.
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    access_policy: Option<crate::policy::access::AccessPolicy>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    #[serde(default)]
    resources: Vec<String>,
    /// Refresh-token grace in seconds (0–60); absent: strict rotation.
    refresh_grace_secs: Option<i32>,
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write` (and `roles:write` to give the client roles). The secret is shown once.",
    request_body = NewClientBody,
    responses((status = 201, body = ClientSecret), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The client id is taken", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/clients")]
pub async fn create_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    require(&state, &req, &p, Permission::ClientsWrite).await?;
    let b: NewClientBody = body(&raw)?;
    if !b.roles.is_empty() {
        // A client's roles are permissions it acts with: granting them needs roles:write.
        require(&state, &req, &p, Permission::RolesWrite).await?;
    }
    let spec = crate::admin::clients::ClientSpec {
        client_id: b.client_id,
        name: b.name,
        redirect_uris: b.redirect_uris,
        public: b.public,
        grants: b.grant_types,
        scopes: b.scopes,
        post_logout_redirect_uris: b.post_logout_redirect_uris,
        roles: b.roles,
        first_party: b.first_party,
        pkce: b.pkce,
        id_token_alg: b.id_token_alg,
        require_mfa: b.require_mfa,
        backchannel_logout_uri: b.backchannel_logout_uri,
        jwks: b.jwks.map(|j| j.to_string()),
        access_policy: b.access_policy,
        resources: b.resources,
        refresh_grace_secs: b.refresh_grace_secs,
    };
    let created = crate::admin::clients::add(&state, &actor(&state, &req, &p), &spec).await?;
    Ok(secret_response(StatusCode::CREATED, created))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write` (and `roles:write` to change the client's roles). Absent fields stay; `null` clears.",
    params(("client_id" = String, Path, description = "The client id")),
    request_body = crate::admin::clients::ClientPatch,
    responses((status = 200, body = ClientView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[patch("/admin/api/v1/clients/{client_id}")]
pub async fn update_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    require(&state, &req, &p, Permission::ClientsWrite).await?;
    let patch: crate::admin::clients::ClientPatch = body(&raw)?;
    if patch.roles.is_some() {
        require(&state, &req, &p, Permission::RolesWrite).await?;
    }
    Ok(HttpResponse::Ok().json(crate::admin::clients::update(&state, &actor(&state, &req, &p), &path, patch).await?))
}

#[utoipa::path(tag = "sessions", description = "Needs `sessions:revoke`. Ends every user's sessions and the refresh tokens granted from them; back-channel logouts follow.",
    responses((status = 200, body = SessionsEnded), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/sessions")]
pub async fn revoke_all_sessions(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::SessionsRevoke).await?;
    let sessions_ended = users::end_all_sessions(&state, &a).await?;
    Ok(HttpResponse::Ok().json(SessionsEnded { sessions_ended }))
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

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserPage {
    items: Vec<users::UserView>,
    page: u64,
    per_page: u64,
    total: u64,
}

/// One audit event.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "type")]
    event_type: String,
    outcome: String,
    actor: Option<String>,
    user_id: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    /// Event-specific detail; for changes, `{"changes": {field: {"from": …, "to": …}}}`.
    #[schema(value_type = Object)]
    detail: Value,
}

impl From<audit_event::Model> for AuditItem {
    fn from(e: audit_event::Model) -> Self {
        Self {
            detail: serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
            id: e.id,
            at: e.at,
            event_type: e.event_type,
            outcome: e.outcome,
            actor: e.actor,
            user_id: e.user_id,
            client_id: e.client_id,
            ip: e.ip,
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    items: Vec<AuditItem>,
    page: u64,
    per_page: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    sessions_ended: u64,
}

/// A client and, for a confidential one, its secret (shown this once).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientSecret {
    #[serde(flatten)]
    client: ClientView,
    client_secret: Option<String>,
}

/// A live browser session (never its cookie value).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionView {
    id: String,
    created_at: chrono::DateTime<chrono::Utc>,
    auth_time: i64,
    last_seen_ms: i64,
    expires_ms: i64,
    amr: Vec<String>,
    acr: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<crate::storage::entities::session::Model> for SessionView {
    fn from(s: crate::storage::entities::session::Model) -> Self {
        Self {
            amr: serde_json::from_str(&s.amr).unwrap_or_default(),
            id: s.id,
            created_at: s.created_at,
            auth_time: s.auth_time,
            last_seen_ms: s.last_seen_ms,
            expires_ms: s.expires_ms,
            acr: s.acr,
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
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
        list_users, get_user, create_user, update_user, disable_user, enable_user, unlock_user, reset_mfa, set_password,
        grant_role, revoke_role, set_attribute, list_sessions, revoke_sessions, delete_user, revoke_all_sessions, list_roles, create_role, list_clients,
        get_client, create_client, update_client, delete_client, rotate_client_secret, list_keys, rotate_keys, list_audit
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;
