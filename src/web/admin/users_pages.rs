//! The user pages: the list, one user, and its actions.

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

async fn render_user(
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
            amr: serde_json::from_str::<Vec<String>>(&s.amr).unwrap_or_default().join("+"),
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
    /// The passkey to remove (its credential id).
    credential: Option<String>,
    /// For a deletion: the username, typed again.
    confirm: Option<String>,
    /// For an invitation or reset link: mail it too.
    send: Option<String>,
    /// The upstream provider to unlink.
    provider: Option<String>,
}

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
        "disable" | "enable" | "set-attr" | "profile" | "delete" => Permission::UsersWrite,
        "unlock" | "reset-mfa" | "set-password" | "passkey-remove" | "invite" | "reset-link" | "upstream-remove" => {
            Permission::UsersCredentials
        }
        "end-sessions" => Permission::SessionsRevoke,
        "grant" | "revoke" => Permission::RolesWrite,
        _ => {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                crate::web::ui::t("admin_msg.bad_request"),
                crate::web::ui::t("admin_msg.unknown_action"),
            ));
        }
    };
    let Ok(_capability) = a.principal.authorize(needed) else {
        audit_refusal(&state, &req, &a, needed).await?;
        return Ok(forbidden(needed.as_str()));
    };
    if f.action == "delete" && f.confirm.as_deref().map(str::trim) != Some(username.as_str()) {
        let msg = crate::web::ui::tf("admin_msg.confirm_user", "user", &username);
        if !a.can(Permission::UsersRead) {
            return Ok(error_page(StatusCode::BAD_REQUEST, crate::web::ui::t("admin_msg.not_done"), &msg));
        }
        return render_user(&state, &a, &username, StatusCode::BAD_REQUEST, None, Some(msg)).await;
    }
    // Credentials change, and accounts are erased, only after a fresh login.
    if (needed == Permission::UsersCredentials || f.action == "delete") && !a.recent(&state) {
        // Credentials change only after a fresh password + code.
        return Ok(reauth_first(&format!("/admin/users/{username}")));
    }
    let actor = a.actor(&state, &req);
    let s = &*state;
    let done: Result<(), AdminError> = match f.action.as_str() {
        "disable" => users::set_disabled(s, &actor, &username, true).await.map(drop),
        "enable" => users::set_disabled(s, &actor, &username, false).await.map(drop),
        "unlock" => users::unlock(s, &actor, &username).await.map(drop),
        "reset-mfa" => users::reset_mfa(s, &actor, &username).await.map(drop),
        "passkey-remove" => {
            users::remove_passkey(s, &actor, &username, f.credential.as_deref().unwrap_or_default()).await
        }
        "end-sessions" => users::end_sessions(s, &actor, &username).await.map(drop),
        "upstream-remove" => {
            users::remove_upstream(s, &actor, &username, f.provider.as_deref().unwrap_or_default()).await
        }
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
        "delete" => match users::delete(s, &actor, &username).await {
            Ok(_) => return Ok(see_other("/admin/users?m=deleted")),
            Err(e) => Err(e),
        },
        "invite" | "reset-link" => {
            let purpose =
                if f.action == "invite" { crate::lifecycle::Purpose::Invite } else { crate::lifecycle::Purpose::Reset };
            match crate::lifecycle::recovery::issue(s, &actor, &username, purpose, f.send.is_some()).await {
                // Shown once, on this answer (never in a URL or a redirect).
                Ok(issued) => {
                    let until = issued.expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
                    let text = match (&issued.url, &issued.sent_to) {
                        (Some(url), _) => {
                            crate::web::ui::tf("admin_msg.link_made", "until", until).replace("{url}", url)
                        }
                        (None, to) => crate::web::ui::tf("admin_msg.link_sent", "until", until)
                            .replace("{to}", to.as_deref().unwrap_or_default()),
                    };
                    let status = StatusCode::OK;
                    let mut resp = render_user(&state, &a, &username, status, Some(text), None).await?;
                    resp.headers_mut().insert(
                        actix_web::http::header::CACHE_CONTROL,
                        actix_web::http::header::HeaderValue::from_static("no-store"),
                    );
                    return Ok(resp);
                }
                Err(e) => Err(e),
            }
        }
        "set-password" => match &f.password {
            Some(pw) => users::set_password(s, &actor, &username, pw).await,
            None => Err(AdminError::Refused("password: enter the new password".into())),
        },
        _ => Ok(()),
    };
    match done {
        Ok(()) => Ok(see_other(&format!("/admin/users/{}?m={}", urlencode(&username), f.action))),
        Err(AdminError::NotFound { what: "passkey", .. }) => {
            let gone = Some(crate::web::ui::t("admin_msg.passkey_gone").to_owned());
            render_user(&state, &a, &username, StatusCode::NOT_FOUND, None, gone).await
        }
        Err(AdminError::NotFound { .. }) => Ok(error_page(
            StatusCode::NOT_FOUND,
            crate::web::ui::t("admin_msg.no_such_user"),
            crate::web::ui::t("admin_msg.no_such_user_text"),
        )),
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(AdminError::ForbiddenTarget(m)) => {
            Ok(error_page(StatusCode::FORBIDDEN, crate::web::ui::t("admin_msg.not_allowed"), &m))
        }
        Err(
            e @ (AdminError::Invalid(_) | AdminError::Refused(_) | AdminError::Exists { .. } | AdminError::Password(_)),
        ) if a.can(Permission::UsersRead) => {
            render_user(&state, &a, &username, StatusCode::BAD_REQUEST, None, Some(e.to_string())).await
        }
        // Without users:read the answer is the message alone, not the user's page.
        Err(
            e @ (AdminError::Invalid(_) | AdminError::Refused(_) | AdminError::Exists { .. } | AdminError::Password(_)),
        ) => Ok(error_page(StatusCode::BAD_REQUEST, crate::web::ui::t("admin_msg.not_done"), &e.to_string())),
        Err(e) => Err(admin_error(e)),
    }
}

// ---- re-authentication ------------------------------------------------------
