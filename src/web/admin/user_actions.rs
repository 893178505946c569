//! The actions on one user, one route each (`POST /admin/users/{username}/…`,
//! listed in `web::routes::pages`). Every route runs the same steps in
//! [`OnUser::act`]: the CSRF token and a two-factor administrator session, the
//! action's permission (a refusal is audited), the action's own check (the
//! typed username before an erasure), a recent login for credentials and
//! erasure, then the admin service, and one mapping of its result to a page.

use super::*;

/// One action: its name (the path's last segment and the notice code of
/// the page it returns to) and the permission it needs.
struct Action {
    name: &'static str,
    needs: Permission,
}

impl Action {
    /// Credentials change, and accounts are erased, only after a fresh login.
    fn wants_recent_login(&self) -> bool {
        self.needs == Permission::UsersCredentials || self.name == "delete"
    }
}

const DISABLE: Action = Action { name: "disable", needs: Permission::UsersWrite };
const ENABLE: Action = Action { name: "enable", needs: Permission::UsersWrite };
const SET_ATTR: Action = Action { name: "set-attr", needs: Permission::UsersWrite };
const PROFILE: Action = Action { name: "profile", needs: Permission::UsersWrite };
const DELETE: Action = Action { name: "delete", needs: Permission::UsersWrite };
const UNLOCK: Action = Action { name: "unlock", needs: Permission::UsersCredentials };
const RESET_MFA: Action = Action { name: "reset-mfa", needs: Permission::UsersCredentials };
const SET_PASSWORD: Action = Action { name: "set-password", needs: Permission::UsersCredentials };
const PASSKEY_REMOVE: Action = Action { name: "passkey-remove", needs: Permission::UsersCredentials };
const INVITE: Action = Action { name: "invite", needs: Permission::UsersCredentials };
const RESET_LINK: Action = Action { name: "reset-link", needs: Permission::UsersCredentials };
const UPSTREAM_REMOVE: Action = Action { name: "upstream-remove", needs: Permission::UsersCredentials };
const END_SESSIONS: Action = Action { name: "end-sessions", needs: Permission::SessionsRevoke };
const GRANT: Action = Action { name: "grant", needs: Permission::RolesWrite };
const REVOKE: Action = Action { name: "revoke", needs: Permission::RolesWrite };

/// What a finished action answers.
enum Done {
    /// Back to the user's page, with the action's notice.
    Back,
    /// The account is gone: to the list.
    Deleted,
    /// The user's page with this text, shown once (a link): never cached.
    Shown(String),
}

/// A page with only `text` on it (a 200), for an administrator who may act
/// but not read the user's page.
fn notice_page(text: &str) -> HttpResponse {
    error_page(StatusCode::OK, crate::web::ui::t("admin_msg.done"), text)
}

type Answer = Result<HttpResponse, WebError>;

/// The user an action is on (the path's `{username}`), with its request:
/// each handler below is its form and the service it calls, and
/// [`OnUser::act`] does the rest.
pub struct OnUser {
    state: web::Data<AppState>,
    req: HttpRequest,
    username: String,
}

impl actix_web::FromRequest for OnUser {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let path = web::Path::<String>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let username = path.await?.into_inner();
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("the application state is missing"))?;
            Ok(Self { state, req, username })
        })
    }
}

impl OnUser {
    /// The steps every user action runs, in order (see the module comment).
    /// `refuse` is the action's own check, answered as a bad request before a
    /// re-authentication is asked for.
    async fn act(
        &self,
        csrf: &str,
        action: Action,
        refuse: Option<String>,
        run: impl AsyncFnOnce(&AppState, &Actor, &str) -> Result<Done, AdminError>,
    ) -> Result<HttpResponse, WebError> {
        let (state, req, username) = (&*self.state, &self.req, self.username.as_str());
        let a = admin_or_return!(admin_for_form(state, req, csrf));
        if a.principal.authorize(action.needs).is_err() {
            audit_refusal(state, req, &a, action.needs).await?;
            return Ok(forbidden(action.needs.as_str()));
        }
        if let Some(msg) = refuse {
            if !a.can(Permission::UsersRead) {
                return Ok(error_page(StatusCode::BAD_REQUEST, crate::web::ui::t("admin_msg.not_done"), &msg));
            }
            return render_user(state, &a, username, StatusCode::BAD_REQUEST, None, Some(msg)).await;
        }
        if action.wants_recent_login() && !a.recent(state) {
            return Ok(reauth_first(&format!("/admin/users/{}", urlencode(username))));
        }
        match run(state, &a.actor(state, req), username).await {
            Ok(Done::Back) => Ok(see_other(&format!("/admin/users/{}?m={}", urlencode(username), action.name))),
            Ok(Done::Deleted) => Ok(see_other("/admin/users?m=deleted")),
            Ok(Done::Shown(text)) => {
                // Without users:read, the text alone: the action has run, and
                // its one-time answer must not be lost to a refused page.
                let mut resp = if a.can(Permission::UsersRead) {
                    render_user(state, &a, username, StatusCode::OK, Some(text), None).await?
                } else {
                    notice_page(&text)
                };
                resp.headers_mut().insert(
                    actix_web::http::header::CACHE_CONTROL,
                    actix_web::http::header::HeaderValue::from_static("no-store"),
                );
                Ok(resp)
            }
            Err(AdminError::NotFound { what: "passkey", .. }) if a.can(Permission::UsersRead) => {
                let gone = Some(crate::web::ui::t("admin_msg.passkey_gone").to_owned());
                render_user(state, &a, username, StatusCode::NOT_FOUND, None, gone).await
            }
            Err(AdminError::NotFound { what: "passkey", .. }) => Ok(error_page(
                StatusCode::NOT_FOUND,
                crate::web::ui::t("admin_msg.not_done"),
                crate::web::ui::t("admin_msg.passkey_gone"),
            )),
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
                e @ (AdminError::Invalid(_)
                | AdminError::Refused(_)
                | AdminError::Exists { .. }
                | AdminError::Password(_)),
            ) if a.can(Permission::UsersRead) => {
                render_user(state, &a, username, StatusCode::BAD_REQUEST, None, Some(e.to_string())).await
            }
            // Without users:read the answer is the message alone, not the user's page.
            Err(
                e @ (AdminError::Invalid(_)
                | AdminError::Refused(_)
                | AdminError::Exists { .. }
                | AdminError::Password(_)),
            ) => Ok(error_page(StatusCode::BAD_REQUEST, crate::web::ui::t("admin_msg.not_done"), &e.to_string())),
            Err(e) => Err(admin_error(e)),
        }
    }
}

/// The form of an action without fields of its own.
#[derive(Deserialize)]
pub struct Confirm {
    csrf: String,
}

pub async fn user_disable(on: OnUser, f: StrictForm<Confirm>) -> Answer {
    on.act(&f.csrf, DISABLE, None, async |s, a, u| users::set_disabled(s, a, u, true).await.map(|_| Done::Back)).await
}

pub async fn user_enable(on: OnUser, f: StrictForm<Confirm>) -> Answer {
    on.act(&f.csrf, ENABLE, None, async |s, a, u| users::set_disabled(s, a, u, false).await.map(|_| Done::Back)).await
}

pub async fn user_unlock(on: OnUser, f: StrictForm<Confirm>) -> Answer {
    on.act(&f.csrf, UNLOCK, None, async |s, a, u| users::unlock(s, a, u).await.map(|_| Done::Back)).await
}

pub async fn user_reset_mfa(on: OnUser, f: StrictForm<Confirm>) -> Answer {
    on.act(&f.csrf, RESET_MFA, None, async |s, a, u| users::reset_mfa(s, a, u).await.map(|_| Done::Back)).await
}

pub async fn user_end_sessions(on: OnUser, f: StrictForm<Confirm>) -> Answer {
    on.act(&f.csrf, END_SESSIONS, None, async |s, a, u| users::end_sessions(s, a, u).await.map(|_| Done::Back)).await
}

#[derive(Deserialize)]
pub struct GrantForm {
    csrf: String,
    role: String,
}

pub async fn user_grant(on: OnUser, f: StrictForm<GrantForm>) -> Answer {
    on.act(&f.csrf, GRANT, None, async |s, a, u| users::grant(s, a, u, &f.role).await.map(|_| Done::Back)).await
}

pub async fn user_revoke(on: OnUser, f: StrictForm<GrantForm>) -> Answer {
    on.act(&f.csrf, REVOKE, None, async |s, a, u| users::revoke(s, a, u, &f.role).await.map(|_| Done::Back)).await
}

#[derive(Deserialize)]
pub struct AttributeForm {
    csrf: String,
    key: String,
    #[serde(default)]
    value: String,
}

pub async fn user_set_attr(on: OnUser, f: StrictForm<AttributeForm>) -> Answer {
    on.act(&f.csrf, SET_ATTR, None, async |s, a, u| {
        users::set_attribute(s, a, u, &f.key, &f.value).await.map(|_| Done::Back)
    })
    .await
}

#[derive(Deserialize)]
pub struct ProfileForm {
    csrf: String,
    email: Option<String>,
    #[serde(flatten)]
    fields: crate::web::form::ProfileFields,
}

pub async fn user_profile(on: OnUser, f: StrictForm<ProfileForm>) -> Answer {
    let f = f.into_inner();
    let patch = f.fields.into_patch(Some(crate::web::form::blank_is_none(f.email)));
    on.act(&f.csrf, PROFILE, None, async |s, a, u| users::update_profile(s, a, u, patch).await.map(|_| Done::Back))
        .await
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf: String,
    /// The username, typed again.
    #[serde(default)]
    confirm: String,
}

pub async fn user_delete(on: OnUser, f: StrictForm<DeleteForm>) -> Answer {
    let u = on.username.as_str();
    let mistyped = (f.confirm.trim() != u).then(|| crate::web::ui::tf("admin_msg.confirm_user", "user", u));
    on.act(&f.csrf, DELETE, mistyped, async |s, a, u| users::delete(s, a, u).await.map(|_| Done::Deleted)).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    password: Option<SecretString>,
}

pub async fn user_set_password(on: OnUser, f: StrictForm<PasswordForm>) -> Answer {
    on.act(&f.csrf, SET_PASSWORD, None, async |s, a, u| match &f.password {
        Some(pw) => users::set_password(s, a, u, pw).await.map(|()| Done::Back),
        None => Err(AdminError::Refused("password: enter the new password".into())),
    })
    .await
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    csrf: String,
    /// The passkey's credential id.
    #[serde(default)]
    credential: String,
}

pub async fn user_passkey_remove(on: OnUser, f: StrictForm<PasskeyForm>) -> Answer {
    on.act(&f.csrf, PASSKEY_REMOVE, None, async |s, a, u| {
        users::remove_passkey(s, a, u, &f.credential).await.map(|()| Done::Back)
    })
    .await
}

#[derive(Deserialize)]
pub struct UpstreamForm {
    csrf: String,
    /// The upstream provider to unlink.
    #[serde(default)]
    provider: String,
}

pub async fn user_upstream_remove(on: OnUser, f: StrictForm<UpstreamForm>) -> Answer {
    on.act(&f.csrf, UPSTREAM_REMOVE, None, async |s, a, u| {
        users::remove_upstream(s, a, u, &f.provider).await.map(|()| Done::Back)
    })
    .await
}

#[derive(Deserialize)]
pub struct LinkForm {
    csrf: String,
    /// Mail the link too.
    send: Option<String>,
}

pub async fn user_invite(on: OnUser, f: StrictForm<LinkForm>) -> Answer {
    let send = f.send.is_some();
    on.act(&f.csrf, INVITE, None, async |s, a, u| link(s, a, u, crate::lifecycle::Purpose::Invite, send).await).await
}

pub async fn user_reset_link(on: OnUser, f: StrictForm<LinkForm>) -> Answer {
    let send = f.send.is_some();
    on.act(&f.csrf, RESET_LINK, None, async |s, a, u| link(s, a, u, crate::lifecycle::Purpose::Reset, send).await).await
}

/// An invitation or reset link, shown once on the answer (never in a URL or
/// a redirect), or mailed.
async fn link(
    state: &AppState,
    a: &Actor,
    username: &str,
    purpose: crate::lifecycle::Purpose,
    send: bool,
) -> Result<Done, AdminError> {
    let issued = crate::lifecycle::recovery::issue(state, a, username, purpose, send).await?;
    let until = issued.expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    Ok(Done::Shown(match (&issued.url, &issued.sent_to) {
        (Some(url), _) => crate::web::ui::tf("admin_msg.link_made", "until", until).replace("{url}", url),
        (None, to) => {
            crate::web::ui::tf("admin_msg.link_sent", "until", until).replace("{to}", to.as_deref().unwrap_or_default())
        }
    }))
}
