//! The user pages: the list and one user (its actions are in `user_actions`).

use super::*;

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
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    page: Option<u64>,
    m: Option<String>,
}

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
        list.push(users::show(&state, &a.actor(&state, &req), &u.username).await.map_err(admin_error)?);
    }
    let p = UsersPage {
        title: crate::web::ui::t("admin.users"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        q,
        users: list,
        total,
        page,
        pages,
        notice: (query.m.as_deref() == Some("deleted")).then_some(crate::web::ui::t("admin_msg.user_deleted")),
    };
    a.page(StatusCode::OK, &p)
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
    passkeys: Vec<PasskeyRow>,
    /// Linked upstream identities: (provider, subject, address, last used).
    upstream: Vec<(String, String, String, String)>,
    events: Option<Vec<EventRow>>,
    all_roles: Vec<String>,
    notice: Option<String>,
    error: Option<String>,
    can_write: bool,
    can_credentials: bool,
    can_roles: bool,
    can_sessions: bool,
    recent: bool,
    /// Mail is configured: links can be mailed from here.
    mail_on: bool,
}

/// A passkey of the user, as its row on the page.
struct PasskeyRow {
    credential_id: String,
    name: String,
    kind: &'static str,
    created: String,
    last_used: String,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    pub(super) m: Option<String>,
}

pub(super) async fn render_user(
    state: &AppState,
    a: &Admin,
    username: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    let u = match users::show(state, &a.reader(), username).await {
        Ok(u) => u,
        Err(AdminError::NotFound { .. }) => {
            return Ok(error_page(
                StatusCode::NOT_FOUND,
                crate::web::ui::t("admin_msg.no_such_user"),
                crate::web::ui::t("admin_msg.no_such_user_text"),
            ));
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
            amr: s.amr.join("+"),
        })
        .collect();
    let upstream = users::upstream_identities(state, &a.reader(), username)
        .await
        .map_err(admin_error)?
        .into_iter()
        .map(|i| {
            let last = i.last_used_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
            (i.provider, i.subject, i.email.unwrap_or_default(), last)
        })
        .collect();
    let passkeys = users::passkeys(state, &a.reader(), username)
        .await
        .map_err(admin_error)?
        .into_iter()
        .map(|p| PasskeyRow {
            created: p.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_used: p.last_used_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default(),
            credential_id: p.credential_id,
            name: p.name,
            kind: if p.kind == "hwk" { "device-bound" } else { "synced" },
        })
        .collect();
    let events = if a.can(Permission::AuditRead) {
        let filter = crate::storage::audit::Filter { user_id: Some(u.id.clone()), ..Default::default() };
        let recent = crate::admin::audit_events(&a.reader(), &filter).map_err(admin_error)?;
        Some(event_rows(state, recent.limit(20).all(&state.db).await?).await?)
    } else {
        None
    };
    let all_roles = roles::list(state, &a.reader()).await.map_err(admin_error)?.into_iter().map(|r| r.name).collect();
    let p = UserPage {
        title: crate::web::ui::t("admin.user"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        locked: u.locked_until_ms.is_some(),
        u,
        sessions,
        passkeys,
        upstream,
        events,
        all_roles,
        notice,
        error,
        can_write: a.can(Permission::UsersWrite),
        can_credentials: a.can(Permission::UsersCredentials),
        can_roles: a.can(Permission::RolesWrite),
        can_sessions: a.can(Permission::SessionsRevoke),
        recent: a.recent(state),
        mail_on: state.mailer.is_some(),
    };
    a.page(status, &p)
}

pub async fn user_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::UsersRead, "read users"));
    render_user(&state, &a, &path, StatusCode::OK, notice_text(q.m.as_deref()), None).await
}

// ---- re-authentication ------------------------------------------------------
