//! The admin JSON API, `/admin/api/v1/…` (first endpoints: users and the audit
//! log). Callers present a Portcullis access token whose audience is
//! `{issuer}/admin`; their permissions come from their roles at the time of
//! the call (see `policy`), so revoking a role takes effect at once.
//! Errors are RFC 9457 problem documents naming the offending field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, web};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{Actor, AdminError, users};
use crate::policy::{Permission, Principal, permissions_of};
use crate::state::AppState;
use crate::storage::entities::{audit_event, user, user_role};

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
        .service(list_roles)
        .service(create_role)
        .service(list_clients)
        .service(get_client)
        .service(delete_client)
        .service(rotate_client_secret)
        .service(list_keys)
        .service(rotate_keys);
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    field: Option<&'static str>,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, title, detail: detail.into(), field: None }
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
        if self.status == StatusCode::UNAUTHORIZED {
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

/// Authenticates the caller and loads their current permissions.
async fn principal(state: &AppState, req: &HttpRequest) -> Result<Principal, Problem> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
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
            Some(c) => Ok(Principal { subject: sub, is_client: true, permissions: permissions_of(&c.roles) }),
            None => Err(unauthorized()),
        };
    }
    if let Some(u) = user::Entity::find_by_id(sub.as_str()).one(&state.db).await? {
        if u.disabled {
            return Err(unauthorized());
        }
        let roles: Vec<String> = user_role::Entity::find()
            .filter(user_role::Column::UserId.eq(u.id.as_str()))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|r| r.role_name)
            .collect();
        return Ok(Principal { subject: sub, is_client: false, permissions: permissions_of(&roles) });
    }
    Err(unauthorized())
}

fn actor(state: &AppState, req: &HttpRequest, p: &Principal) -> Actor {
    Actor {
        name: format!("{}:{}", if p.is_client { "client" } else { "user" }, p.subject),
        ip: crate::web::client_info::ip(state, req),
        user_agent: crate::web::client_info::user_agent(req),
    }
}

fn forbidden(e: crate::policy::Denied) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    search: Option<String>,
    page: Option<u64>,
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

#[get("/admin/api/v1/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Paging>,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = p.authorize(Permission::UsersRead).map_err(forbidden)?;
    let (page, per) = bounds(&q)?;
    let mut find = user::Entity::find().order_by_asc(user::Column::UsernameKey);
    if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
        find = find.filter(user::Column::UsernameKey.contains(s.to_lowercase()));
    }
    let pages = find.paginate(&state.db, per);
    let total = pages.num_items().await?;
    let mut out = Vec::new();
    for u in pages.fetch_page(page).await? {
        out.push(users::show(&state, &u.username).await?);
    }
    Ok(HttpResponse::Ok().json(json!({ "items": out, "page": page, "per_page": per, "total": total })))
}

#[get("/admin/api/v1/users/{username}")]
pub async fn get_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = p.authorize(Permission::UsersRead).map_err(forbidden)?;
    Ok(HttpResponse::Ok().json(users::show(&state, &path).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    username: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    password: Option<secrecy::SecretString>,
}

#[post("/admin/api/v1/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = p.authorize(Permission::UsersWrite).map_err(forbidden)?;
    let b: NewUserBody = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Invalid body", format!("{e}")))?;
    if !b.roles.is_empty() {
        // Granting roles hands out permissions: it needs roles:write too.
        p.authorize(Permission::RolesWrite).map_err(forbidden)?;
    }
    let new = users::NewUser::parse(&b.username, b.email.as_deref(), b.name.as_deref(), &b.roles, b.password)?;
    let view = users::create(&state, &actor(&state, &req, &p), new).await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    user: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

#[get("/admin/api/v1/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, Problem> {
    let p = principal(&state, &req).await?;
    let _cap = p.authorize(Permission::AuditRead).map_err(forbidden)?;
    let (page, per) = bounds(&Paging { search: None, page: q.page, per_page: q.per_page })?;
    let mut find = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
    if let Some(u) = &q.user {
        find = find.filter(audit_event::Column::UserId.eq(u.as_str()));
    }
    if let Some(t) = &q.event_type {
        find = find.filter(audit_event::Column::EventType.eq(t.as_str()));
    }
    let items: Vec<Value> = find
        .paginate(&state.db, per)
        .fetch_page(page)
        .await?
        .into_iter()
        .map(|e| {
            json!({ "id": e.id, "at": e.at, "type": e.event_type, "outcome": e.outcome, "actor": e.actor,
                "user_id": e.user_id, "client_id": e.client_id, "ip": e.ip,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null) })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "page": page, "per_page": per })))
}

/// Parses a JSON body strictly (unknown fields refused) into `T`.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(raw).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Invalid body", format!("{e}")))
}

/// Authenticates, checks one permission, and returns the audit actor.
async fn gate(state: &AppState, req: &HttpRequest, perm: Permission) -> Result<Actor, Problem> {
    let p = principal(state, req).await?;
    p.authorize(perm).map_err(forbidden)?;
    Ok(actor(state, req, &p))
}

#[post("/admin/api/v1/users/{username}/disable")]
pub async fn disable_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    Ok(HttpResponse::Ok().json(users::set_disabled(&state, &a, &path, true).await?))
}

#[post("/admin/api/v1/users/{username}/enable")]
pub async fn enable_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersWrite).await?;
    Ok(HttpResponse::Ok().json(users::set_disabled(&state, &a, &path, false).await?))
}

#[post("/admin/api/v1/users/{username}/unlock")]
pub async fn unlock_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersCredentials).await?;
    Ok(HttpResponse::Ok().json(users::unlock(&state, &a, &path).await?))
}

#[post("/admin/api/v1/users/{username}/reset-mfa")]
pub async fn reset_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::UsersCredentials).await?;
    Ok(HttpResponse::Ok().json(users::reset_mfa(&state, &a, &path).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    password: secrecy::SecretString,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

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

#[actix_web::delete("/admin/api/v1/users/{username}/roles/{role}")]
pub async fn revoke_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::RolesWrite).await?;
    let (username, role) = path.into_inner();
    Ok(HttpResponse::Ok().json(users::revoke(&state, &a, &username, &role).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    value: String,
}

#[actix_web::put("/admin/api/v1/users/{username}/attributes/{key}")]
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

#[actix_web::delete("/admin/api/v1/users/{username}/sessions")]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::SessionsRevoke).await?;
    let ended = users::end_sessions(&state, &a, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "sessions_ended": ended })))
}

#[get("/admin/api/v1/roles")]
pub async fn list_roles(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::UsersRead).await?;
    Ok(HttpResponse::Ok().json(crate::admin::roles::list(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoleBody {
    name: String,
    description: Option<String>,
}

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

#[get("/admin/api/v1/clients")]
pub async fn list_clients(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::ClientsRead).await?;
    Ok(HttpResponse::Ok().json(crate::admin::clients::list(&state).await?))
}

#[get("/admin/api/v1/clients/{client_id}")]
pub async fn get_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::ClientsRead).await?;
    Ok(HttpResponse::Ok().json(crate::admin::clients::show(&state, &path).await?))
}

#[actix_web::delete("/admin/api/v1/clients/{client_id}")]
pub async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::ClientsWrite).await?;
    crate::admin::clients::remove(&state, &a, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[post("/admin/api/v1/clients/{client_id}/rotate-secret")]
pub async fn rotate_client_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    use secrecy::ExposeSecret;
    let a = gate(&state, &req, Permission::ClientsWrite).await?;
    let created = crate::admin::clients::rotate_secret(&state, &a, &path).await?;
    // Shown once, like the CLI; the response must not be cached.
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
        "client_id": created.client.client_id,
        "client_secret": created.secret.as_ref().map(|s| s.expose_secret()),
    })))
}

#[get("/admin/api/v1/keys")]
pub async fn list_keys(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    gate(&state, &req, Permission::KeysRotate).await?;
    Ok(HttpResponse::Ok().json(crate::tokens::keys::list(&state).await?))
}

#[post("/admin/api/v1/keys/rotate")]
pub async fn rotate_keys(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let a = gate(&state, &req, Permission::KeysRotate).await?;
    let keys = crate::tokens::keys::rotate(&state, &a).await?;
    state.reload_keys().await.map_err(|e| AdminError::Refused(e.to_string()))?;
    Ok(HttpResponse::Ok().json(keys))
}
