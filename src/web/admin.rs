//! The admin pages: users (search, detail, actions), clients, roles and the
//! audit log, server-rendered. They need a session authenticated with a
//! second factor and the permission of each page or action (the same
//! `policy` checks as the admin API); credential-changing actions also need a
//! recent authentication (`admin_reauth_secs`), renewed at `/admin/reauth`.
//! Every action goes through the same admin services as the CLI and the API.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use secrecy::SecretString;
use serde::Deserialize;

use super::form::StrictForm;
use super::login::{see_other, stale_form};
use super::mfa::Factor;
use super::pages::{WebError, error_page, html};
use super::{client_info, csrf};
use crate::admin::{Actor, AdminError, clients, roles, users};
use crate::policy::access::AccessPolicy;
use crate::policy::{Permission, Principal, permissions_of};
use crate::session::{self, AMR_OTP, AMR_PASSWORD, Current};
use crate::state::AppState;
use crate::storage::entities::{audit_event, user};

/// Rows per page on the list pages.
const PER_PAGE: u64 = 50;

/// An administrator's request: who, with which permissions, and the CSRF
/// token for the page's forms.
struct Admin {
    cur: Current,
    principal: Principal,
    csrf: String,
    set_cookie: Option<actix_web::cookie::Cookie<'static>>,
}

impl Admin {
    fn actor(&self, state: &AppState, req: &HttpRequest) -> Actor {
        Actor::for_principal(&self.principal, client_info::ip(state, req), client_info::user_agent(req))
    }

    fn can(&self, p: Permission) -> bool {
        self.principal.authorize(p).is_ok()
    }

    /// Whether the login behind this session is recent enough for
    /// credential-changing actions.
    fn recent(&self, state: &AppState) -> bool {
        state.clock.now().timestamp() - self.cur.session.auth_time <= state.settings.admin_reauth_secs
    }

    fn page(&self, status: StatusCode, t: &impl Template) -> Result<HttpResponse, WebError> {
        let mut resp = html(status, t)?;
        resp.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
        if let Some(c) = &self.set_cookie {
            resp.add_cookie(c).map_err(WebError::internal)?;
        }
        Ok(resp)
    }
}

fn forbidden(what: &str) -> HttpResponse {
    error_page(StatusCode::FORBIDDEN, "Not allowed", &format!("Your roles do not include permission to {what}."))
}

/// The administrator behind a request, or the response to send instead.
async fn admin(state: &AppState, req: &HttpRequest) -> Result<Result<Admin, HttpResponse>, WebError> {
    let Some(cur) = session::current(state, req).await? else {
        return Ok(Err(see_other("/login")));
    };
    let roles = crate::storage::roles_of(&state.db, &cur.user.id).await?;
    let permissions = permissions_of(&roles);
    if permissions.is_empty() {
        return Ok(Err(error_page(StatusCode::FORBIDDEN, "Not allowed", "Your account has no administrative role.")));
    }
    if !crate::policy::has_second_factor(&cur.amr()) {
        return Ok(Err(error_page(
            StatusCode::FORBIDDEN,
            "Two-step verification needed",
            "The admin pages need a login with two-step verification. Set it up on your account page if you have not, then log out and log in again with your code.",
        )));
    }
    let token = csrf::ensure(state, req).map_err(WebError::internal)?;
    let principal = Principal {
        subject: cur.user.id.clone(),
        is_client: false,
        permissions,
        roles,
        auth_time: Some(cur.session.auth_time),
    };
    Ok(Ok(Admin { cur, principal, csrf: token.token, set_cookie: token.set_cookie }))
}

/// `admin` for a state-changing form: also checks its CSRF token.
async fn admin_for_form(
    state: &AppState,
    req: &HttpRequest,
    csrf_field: &str,
) -> Result<Result<Admin, HttpResponse>, WebError> {
    if !csrf::verify(state, req, csrf_field) {
        return Ok(Err(stale_form()));
    }
    admin(state, req).await
}

/// `admin`, holding `perm` (else a 403 page saying it cannot `what`).
async fn admin_with(
    state: &AppState,
    req: &HttpRequest,
    perm: Permission,
    what: &str,
) -> Result<Result<Admin, HttpResponse>, WebError> {
    Ok(match admin(state, req).await? {
        Ok(a) if a.can(perm) => Ok(a),
        Ok(a) => {
            audit_refusal(state, req, &a, perm).await?;
            Err(forbidden(what))
        }
        Err(resp) => Err(resp),
    })
}

/// A refused admin-page request, in the audit log (only administrators with
/// a two-factor session get this far, so it cannot be flooded anonymously).
async fn audit_refusal(state: &AppState, req: &HttpRequest, a: &Admin, perm: Permission) -> Result<(), WebError> {
    crate::storage::record_audit(
        &state.db,
        crate::storage::AuditEvent::new("admin_pages.forbidden", "failure")
            .actor(format!("user:{}", a.cur.user.id))
            .user(&a.cur.user.id)
            .source(client_info::ip(state, req), client_info::user_agent(req))
            .detail(
                serde_json::json!({ "method": req.method().as_str(), "path": req.path(), "permission": perm.as_str() }),
            ),
        state.clock.now(),
    )
    .await?;
    Ok(())
}

macro_rules! admin_or_return {
    ($e:expr) => {
        match $e.await? {
            Ok(a) => a,
            Err(resp) => return Ok(resp),
        }
    };
}

#[get("/admin")]
pub async fn index() -> HttpResponse {
    see_other("/admin/users")
}

// ---- users ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    title: &'static str,
    csrf: String,
    me: String,
    q: String,
    users: Vec<users::UserView>,
    total: u64,
    page: u64,
    pages: u64,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    page: Option<u64>,
}

#[get("/admin/users")]
pub async fn users_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::UsersRead, "read users"));
    let q: String = query.q.as_deref().unwrap_or_default().trim().chars().take(64).collect();
    let mut find = user::Entity::find().order_by_asc(user::Column::UsernameKey);
    if !q.is_empty() {
        find = find.filter(crate::storage::contains_literally(user::Column::UsernameKey, &q.to_lowercase()));
    }
    let pager = find.paginate(&state.db, PER_PAGE);
    let total = pager.num_items().await?;
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = query.page.unwrap_or(0).min(pages - 1);
    let mut list = Vec::new();
    for u in pager.fetch_page(page).await? {
        list.push(users::show(&state, &u.username).await.map_err(admin_error)?);
    }
    let p = UsersPage {
        title: "Users",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        q,
        users: list,
        total,
        page,
        pages,
    };
    a.page(StatusCode::OK, &p)
}

struct SessionRow {
    created: String,
    last_seen: String,
    ip: String,
    user_agent: String,
    amr: String,
}

struct EventRow {
    at: String,
    event_type: String,
    outcome: String,
    actor: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    title: &'static str,
    csrf: String,
    me: String,
    u: users::UserView,
    locked: bool,
    sessions: Vec<SessionRow>,
    events: Option<Vec<EventRow>>,
    all_roles: Vec<String>,
    notice: Option<String>,
    error: Option<String>,
    can_write: bool,
    can_credentials: bool,
    can_roles: bool,
    can_sessions: bool,
    recent: bool,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    m: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "disable" => "The account is disabled and its sessions ended.",
        "enable" => "The account is enabled.",
        "unlock" => "Login failures were cleared.",
        "reset-mfa" => "Two-step verification was removed; the user must set it up again.",
        "set-password" => "The password was set and the user's sessions ended.",
        "end-sessions" => "The user's sessions were ended.",
        "grant" => "The role was granted.",
        "revoke" => "The role was revoked.",
        "set-attr" => "The attribute was set.",
        "profile" => "The profile was saved.",
        "reauth" => "Thank you: you can change credentials for the next few minutes.",
        _ => return None,
    };
    Some(text.to_owned())
}

fn admin_error(e: AdminError) -> WebError {
    WebError::internal(e)
}

async fn render_user(
    state: &AppState,
    a: &Admin,
    username: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    let u = match users::show(state, username).await {
        Ok(u) => u,
        Err(AdminError::NotFound { .. }) => {
            return Ok(error_page(StatusCode::NOT_FOUND, "No such user", "There is no user with that name."));
        }
        Err(e) => return Err(admin_error(e)),
    };
    let now = state.clock.now();
    let sessions = session::list_for_user(state, &state.db, &u.id, now)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            created: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_seen: fmt_ms(s.last_seen_ms),
            ip: s.ip.unwrap_or_default(),
            user_agent: s.user_agent.unwrap_or_default(),
            amr: serde_json::from_str::<Vec<String>>(&s.amr).unwrap_or_default().join("+"),
        })
        .collect();
    let events = if a.can(Permission::AuditRead) {
        Some(
            audit_event::Entity::find()
                .filter(audit_event::Column::UserId.eq(u.id.as_str()))
                .order_by_desc(audit_event::Column::Id)
                .paginate(&state.db, 20)
                .fetch_page(0)
                .await?
                .into_iter()
                .map(event_row)
                .collect(),
        )
    } else {
        None
    };
    let all_roles = roles::list(state).await.map_err(admin_error)?.into_iter().map(|r| r.name).collect();
    let p = UserPage {
        title: "User",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        locked: u.locked_until_ms.is_some(),
        u,
        sessions,
        events,
        all_roles,
        notice,
        error,
        can_write: a.can(Permission::UsersWrite),
        can_credentials: a.can(Permission::UsersCredentials),
        can_roles: a.can(Permission::RolesWrite),
        can_sessions: a.can(Permission::SessionsRevoke),
        recent: a.recent(state),
    };
    a.page(status, &p)
}

fn fmt_ms(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn event_row(e: audit_event::Model) -> EventRow {
    EventRow {
        at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        event_type: e.event_type,
        outcome: e.outcome,
        actor: e.actor.unwrap_or_default(),
        detail: e.detail.chars().take(300).collect(),
    }
}

#[get("/admin/users/{username}")]
pub async fn user_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::UsersRead, "read users"));
    render_user(&state, &a, &path, StatusCode::OK, notice_text(q.m.as_deref()), None).await
}

#[derive(Deserialize)]
pub struct UserAction {
    csrf: String,
    action: String,
    role: Option<String>,
    key: Option<String>,
    value: Option<String>,
    email: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    street_address: Option<String>,
    locality: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
    password: Option<SecretString>,
}

#[post("/admin/users/{username}")]
pub async fn user_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: StrictForm<UserAction>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let username = path.into_inner();
    let f = form.into_inner();
    let needed = match f.action.as_str() {
        "disable" | "enable" | "set-attr" | "profile" => Permission::UsersWrite,
        "unlock" | "reset-mfa" | "set-password" => Permission::UsersCredentials,
        "end-sessions" => Permission::SessionsRevoke,
        "grant" | "revoke" => Permission::RolesWrite,
        _ => return Ok(error_page(StatusCode::BAD_REQUEST, "Bad request", "Unknown action.")),
    };
    let Ok(_capability) = a.principal.authorize(needed) else {
        audit_refusal(&state, &req, &a, needed).await?;
        return Ok(forbidden(needed.as_str()));
    };
    if needed == Permission::UsersCredentials && !a.recent(&state) {
        // Credentials change only after a fresh password + code.
        return Ok(see_other(&format!("/admin/reauth?next={}", urlencode(&format!("/admin/users/{username}")))));
    }
    let actor = a.actor(&state, &req);
    let s = &*state;
    let done: Result<(), AdminError> = match f.action.as_str() {
        "disable" => users::set_disabled(s, &actor, &username, true).await.map(drop),
        "enable" => users::set_disabled(s, &actor, &username, false).await.map(drop),
        "unlock" => users::unlock(s, &actor, &username).await.map(drop),
        "reset-mfa" => users::reset_mfa(s, &actor, &username).await.map(drop),
        "end-sessions" => users::end_sessions(s, &actor, &username).await.map(drop),
        "grant" => users::grant(s, &actor, &username, f.role.as_deref().unwrap_or_default()).await.map(drop),
        "revoke" => users::revoke(s, &actor, &username, f.role.as_deref().unwrap_or_default()).await.map(drop),
        "set-attr" => users::set_attribute(
            s,
            &actor,
            &username,
            f.key.as_deref().unwrap_or_default(),
            f.value.as_deref().unwrap_or_default(),
        )
        .await
        .map(drop),
        "profile" => {
            let opt = |v: Option<String>| Some(v.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()));
            let address =
                crate::domain::Address::from_fields(f.street_address, f.locality, f.region, f.postal_code, f.country);
            let patch = users::ProfilePatch {
                email: opt(f.email),
                name: opt(f.name),
                phone_number: opt(f.phone),
                address: Some(Some(address)),
            };
            users::update_profile(s, &actor, &username, patch).await.map(drop)
        }
        "set-password" => match &f.password {
            Some(pw) => users::set_password(s, &actor, &username, pw).await,
            None => Err(AdminError::Refused("password: enter the new password".into())),
        },
        _ => Ok(()),
    };
    match done {
        Ok(()) => Ok(see_other(&format!("/admin/users/{}?m={}", urlencode(&username), f.action))),
        Err(AdminError::NotFound { .. }) => {
            Ok(error_page(StatusCode::NOT_FOUND, "No such user", "There is no user with that name."))
        }
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(
            e @ (AdminError::Invalid(_) | AdminError::Refused(_) | AdminError::Exists { .. } | AdminError::Password(_)),
        ) => render_user(&state, &a, &username, StatusCode::BAD_REQUEST, None, Some(e.to_string())).await,
        Err(e) => Err(admin_error(e)),
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

// ---- re-authentication ------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/reauth.html")]
struct ReauthPage {
    title: &'static str,
    csrf: String,
    me: String,
    next: String,
    failed: bool,
}

#[derive(Deserialize)]
pub struct ReauthQuery {
    next: Option<String>,
}

/// Only a path on the admin pages: never an open redirect, and nothing a
/// `Location` header cannot carry (control characters, non-ASCII).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.len() <= 512
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/admin/users".to_owned(),
    }
}

#[get("/admin/reauth")]
pub async fn reauth_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ReauthQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    let p = ReauthPage {
        title: "Confirm it is you",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        next: safe_next(q.next.as_deref()),
        failed: false,
    };
    a.page(StatusCode::OK, &p)
}

#[derive(Deserialize)]
pub struct ReauthForm {
    csrf: String,
    password: SecretString,
    code: SecretString,
    next: Option<String>,
}

#[post("/admin/reauth")]
pub async fn reauth_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ReauthForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let next = safe_next(form.next.as_deref());
    // Both factors again; each check counts against the account's throttle.
    let ok = super::mfa::reauth(&state, &req, &a.cur, Some(&form.password), Factor::Password).await?
        && super::mfa::reauth(&state, &req, &a.cur, Some(&form.code), Factor::Code).await?;
    let now = state.clock.now();
    crate::storage::record_audit(
        &state.db,
        crate::storage::AuditEvent::new("admin.reauth", if ok { "success" } else { "failure" })
            .user(&a.cur.user.id)
            .source(client_info::ip(&state, &req), client_info::user_agent(&req)),
        now,
    )
    .await?;
    if !ok {
        let p = ReauthPage {
            title: "Confirm it is you",
            csrf: a.csrf.clone(),
            me: a.cur.user.username.clone(),
            next,
            failed: true,
        };
        return a.page(StatusCode::UNAUTHORIZED, &p);
    }
    // A fresh authentication with both factors: a new session (new id and
    // auth_time; the old one ends), as at any login.
    let source = super::login::source_of(&state, &req);
    let done =
        super::login::finish_login(&state, &req, &a.cur.user.id, &[AMR_PASSWORD, AMR_OTP], "2", &source, None).await?;
    let sep = if next.contains('?') { '&' } else { '?' };
    Ok(done.redirect(&format!("{next}{sep}m=reauth")))
}

// ---- clients, roles, audit --------------------------------------------------

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    title: &'static str,
    csrf: String,
    me: String,
    clients: Vec<clients::ClientView>,
}

#[get("/admin/clients")]
pub async fn clients_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::ClientsRead, "read clients"));
    let list = clients::list(&state).await.map_err(admin_error)?;
    a.page(
        StatusCode::OK,
        &ClientsPage { title: "Clients", csrf: a.csrf.clone(), me: a.cur.user.username.clone(), clients: list },
    )
}

#[derive(Template)]
#[template(path = "admin/client.html")]
struct ClientPage {
    title: &'static str,
    csrf: String,
    me: String,
    c: clients::ClientView,
    policy: String,
    can_write: bool,
    notice: Option<String>,
    error: Option<String>,
}

async fn render_client(
    state: &AppState,
    a: &Admin,
    client_id: &str,
    status: StatusCode,
    typed: Option<String>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<HttpResponse, WebError> {
    if !a.can(Permission::ClientsRead) {
        return Ok(forbidden("read clients"));
    }
    let c = match clients::show(state, client_id).await {
        Ok(c) => c,
        Err(AdminError::NotFound { .. }) => {
            return Ok(error_page(StatusCode::NOT_FOUND, "No such client", "There is no client with that id."));
        }
        Err(e) => return Err(admin_error(e)),
    };
    let policy = typed.unwrap_or_else(|| {
        c.access_policy.as_ref().and_then(|p| serde_json::to_string_pretty(p).ok()).unwrap_or_default()
    });
    let p = ClientPage {
        title: "Client",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        c,
        policy,
        can_write: a.can(Permission::ClientsWrite),
        notice,
        error,
    };
    a.page(status, &p)
}

#[get("/admin/clients/{client_id}")]
pub async fn client_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    let notice = (q.m.as_deref() == Some("policy")).then(|| "The access policy was saved.".to_owned());
    render_client(&state, &a, &path, StatusCode::OK, None, None, notice).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    /// The policy as JSON; empty removes it.
    policy: String,
}

#[post("/admin/clients/{client_id}/policy")]
pub async fn client_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: StrictForm<PolicyForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let client_id = path.into_inner();
    let typed = form.policy.trim().to_owned();
    let parsed = if typed.is_empty() { Ok(None) } else { AccessPolicy::parse_json(&typed).map(Some) };
    let policy = match parsed {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("{}: {}", e.field, e.reason);
            return render_client(&state, &a, &client_id, StatusCode::BAD_REQUEST, Some(typed), Some(msg), None).await;
        }
    };
    let patch = clients::ClientPatch { access_policy: Some(policy), ..Default::default() };
    match clients::update(&state, &a.actor(&state, &req), &client_id, patch).await {
        Ok(_) => Ok(see_other(&format!("/admin/clients/{}?m=policy", urlencode(&client_id)))),
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(AdminError::NotFound { .. }) => {
            Ok(error_page(StatusCode::NOT_FOUND, "No such client", "There is no client with that id."))
        }
        Err(e @ (AdminError::Invalid(_) | AdminError::Refused(_))) => {
            render_client(&state, &a, &client_id, StatusCode::BAD_REQUEST, Some(typed), Some(e.to_string()), None).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

#[derive(Template)]
#[template(path = "admin/roles.html")]
struct RolesPage {
    title: &'static str,
    csrf: String,
    me: String,
    roles: Vec<roles::RoleView>,
    can_write: bool,
    error: Option<String>,
}

#[get("/admin/roles")]
pub async fn roles_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    roles_render(&state, &a, StatusCode::OK, None).await
}

async fn roles_render(
    state: &AppState,
    a: &Admin,
    status: StatusCode,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    if !a.can(Permission::UsersRead) {
        return Ok(forbidden("read roles"));
    }
    let list = roles::list(state).await.map_err(admin_error)?;
    let p = RolesPage {
        title: "Roles",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        roles: list,
        can_write: a.can(Permission::RolesWrite),
        error,
    };
    a.page(status, &p)
}

#[derive(Deserialize)]
pub struct RoleForm {
    csrf: String,
    name: String,
    description: Option<String>,
}

#[post("/admin/roles")]
pub async fn role_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<RoleForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    if a.principal.authorize(Permission::RolesWrite).is_err() {
        return Ok(forbidden(Permission::RolesWrite.as_str()));
    }
    let description = form.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    match roles::add(&state, &a.actor(&state, &req), &form.name, description).await {
        Ok(_) => Ok(see_other("/admin/roles")),
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(e @ (AdminError::Invalid(_) | AdminError::Exists { .. } | AdminError::Refused(_))) => {
            roles_render(&state, &a, StatusCode::BAD_REQUEST, Some(e.to_string())).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    title: &'static str,
    csrf: String,
    me: String,
    user: String,
    kind: String,
    events: Vec<EventRow>,
    page: u64,
    more: bool,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<u64>,
}

#[get("/admin/audit")]
pub async fn audit_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::AuditRead, "read the audit log"));
    let user_filter: String = q.user.as_deref().unwrap_or_default().trim().chars().take(128).collect();
    let kind: String = q.kind.as_deref().unwrap_or_default().trim().chars().take(64).collect();
    let mut find = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
    if !user_filter.is_empty() {
        // A username or a user id.
        let id = match user::Entity::find()
            .filter(user::Column::UsernameKey.eq(user_filter.to_lowercase()))
            .one(&state.db)
            .await?
        {
            Some(u) => u.id,
            None => user_filter.clone(),
        };
        find = find.filter(audit_event::Column::UserId.eq(id));
    }
    if !kind.is_empty() {
        find = find.filter(audit_event::Column::EventType.eq(kind.as_str()));
    }
    let page = q.page.unwrap_or(0).min(100_000);
    // One row more than a page tells whether there is a next page.
    let events = find.offset(page * PER_PAGE).limit(PER_PAGE + 1).all(&state.db).await?;
    let more = events.len() as u64 > PER_PAGE;
    let p = AuditPage {
        title: "Audit log",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        user: user_filter,
        kind,
        events: events.into_iter().take(PER_PAGE as usize).map(event_row).collect(),
        page,
        more,
    };
    a.page(StatusCode::OK, &p)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_admin_pages_and_fits_a_location_header() {
        assert_eq!(safe_next(Some("/admin/users/zoe?m=1")), "/admin/users/zoe?m=1");
        for bad in [
            "//evil.example",
            "https://evil.example/admin/",
            "/admin/\\evil",
            "/account",
            "/admin/users\r\nSet-Cookie: x=1",
            "/admin/us\u{e9}rs",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin/users", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/admin/users");
    }
}
