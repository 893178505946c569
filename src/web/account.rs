//! The account page: who you are, change password, your sessions.

use crate::web::cookies::SignedIn;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::form::SignedInForm;
use super::login::{see_other, stale_form};
use super::pages::{WebError, html};
use super::reauth::{Reverified, reverify_password};
use super::{client_info, csrf};
use crate::admin::password::{self, ChangeError, PasswordChange};
use crate::admin::users::ADMIN_ROLE;
use crate::authn::{PasswordError, mfa};
use crate::session::{self, Current};
use crate::state::AppState;
use crate::storage::entities::{client, consent, refresh_family, session as session_entity};
use crate::storage::{AuditEvent, record_audit};

struct SessionRow {
    id: String,
    created: String,
    last_seen: String,
    ip: String,
    user_agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account/account.html")]
struct AccountPage {
    title: &'static str,
    csrf: String,
    username: String,
    name: String,
    email: String,
    roles: String,
    min_length: usize,
    sessions: Vec<SessionRow>,
    notice: Option<&'static str>,
    error: Option<String>,
    mfa_on: bool,
    mfa_required: bool,
    /// The user holds some administrative permission: link the admin pages.
    admin_link: bool,
    recovery_left: u64,
    recovery_low: bool,
    /// (client name, scopes, client id)
    consents: Vec<(String, String, String)>,
    phone: String,
    address: crate::domain::Address,
    /// Passkeys can be used here (WebAuthn is configured).
    passkeys_on: bool,
    passkeys: Vec<PasskeyRow>,
    email_verified: bool,
    /// Mail is configured: the address can be changed and confirmed here.
    mail_on: bool,
    /// Linked upstream providers: (id, name, upstream address).
    upstream_linked: Vec<(String, String, Option<String>)>,
    /// Configured providers not linked yet: (id, name).
    upstream_linkable: Vec<(String, String)>,
}

struct PasskeyRow {
    id: String,
    name: String,
    kind: &'static str,
    created: String,
    last_used: String,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    m: Option<String>,
}

fn notice(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "password_changed" => Some(crate::web::ui::t("account_notice.password_changed")),
        "profile_saved" => Some(crate::web::ui::t("account_notice.profile_saved")),
        "session_ended" => Some(crate::web::ui::t("account_notice.session_ended")),
        "mfa_disabled" => Some(crate::web::ui::t("account_notice.mfa_disabled")),
        "consent_revoked" => Some(crate::web::ui::t("account_notice.consent_revoked")),
        "passkey_added" => Some(crate::web::ui::t("account_notice.passkey_added")),
        "passkey_renamed" => Some(crate::web::ui::t("account_notice.passkey_renamed")),
        "passkey_removed" => Some(crate::web::ui::t("account_notice.passkey_removed")),
        "email_sent" => Some(crate::web::ui::t("account_notice.email_sent")),
        "upstream_linked" => Some(crate::web::ui::t("account_notice.upstream_linked")),
        "upstream_unlinked" => Some(crate::web::ui::t("account_notice.upstream_unlinked")),
        _ => None,
    }
}

fn fmt_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

pub(crate) async fn render(
    state: &AppState,
    req: &HttpRequest,
    cur: &Current,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    let token = csrf::ensure(state, req).map_err(WebError::internal)?;
    let roles = crate::storage::users::roles(&state.db, &cur.user.id).await?;
    let is_admin = roles.iter().any(|r| r == ADMIN_ROLE);
    let sessions = session::list_for_user(state, &state.db, &cur.user.id, state.clock.now())
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == cur.session.id,
            created: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_seen: fmt_ms(s.last_seen_ms),
            ip: s.ip.unwrap_or_default(),
            user_agent: s.user_agent.unwrap_or_default(),
            id: s.id,
        })
        .collect();
    let mfa_on = mfa::has_totp(&state.db, &cur.user.id).await?;
    let recovery_left = if mfa_on { mfa::recovery_remaining(&state.db, &cur.user.id).await? } else { 0 };
    let mut consents = Vec::new();
    for c in consent::Entity::find().filter(consent::Column::UserId.eq(cur.user.id.as_str())).all(&state.db).await? {
        let name = client::Entity::find_by_id(c.client_id.as_str())
            .one(&state.db)
            .await?
            .and_then(|k| k.name)
            .unwrap_or_else(|| c.client_id.clone());
        let scopes: Vec<String> = serde_json::from_str(&c.scopes).unwrap_or_default();
        consents.push((name, scopes.join(" "), c.client_id));
    }
    // Applications that hold live refresh tokens without a stored consent
    // (first-party ones): listed too, so every grant can be withdrawn here.
    let now_ms = state.clock.now().timestamp_millis();
    let live = refresh_family::Entity::find()
        .filter(refresh_family::Column::UserId.eq(cur.user.id.as_str()))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .filter(refresh_family::Column::ExpiresMs.gt(now_ms))
        .all(&state.db)
        .await?;
    for f in live {
        if consents.iter().any(|c| c.2 == f.client_id) {
            continue;
        }
        let name = client::Entity::find_by_id(f.client_id.as_str())
            .one(&state.db)
            .await?
            .and_then(|k| k.name)
            .unwrap_or_else(|| f.client_id.clone());
        consents.push((name, "stays signed in (refresh tokens)".to_owned(), f.client_id));
    }
    let upstream_linked = crate::federation::linked(state, &cur.user.id).await?;
    let page = AccountPage {
        consents,
        mfa_on,
        mfa_required: mfa::required_for(state, &state.db, &cur.user.id).await? > crate::policy::Assurance::Password,
        passkeys_on: state.webauthn.is_some(),
        passkeys: crate::authn::passkey::list(&state.db, &cur.user.id)
            .await?
            .into_iter()
            .map(|p| PasskeyRow {
                kind: if p.hardware { "device-bound" } else { "synced" },
                created: fmt_ms(p.created_ms),
                last_used: p.last_used_ms.map_or_else(|| "never".to_owned(), fmt_ms),
                name: p.name,
                id: p.credential_id,
            })
            .collect(),
        admin_link: !crate::policy::permissions_of(&roles).is_empty(),
        recovery_left,
        recovery_low: mfa_on && recovery_left < mfa::RECOVERY_LOW,
        title: crate::web::ui::t("account.title"),
        csrf: token.token,
        username: cur.user.username.clone(),
        name: cur.user.display_name.clone().unwrap_or_default(),
        email: cur.user.email.clone().unwrap_or_default(),
        email_verified: cur.user.email_verified,
        mail_on: state.mailer.is_some(),
        upstream_linkable: state
            .settings
            .upstream
            .iter()
            .filter(|p| !upstream_linked.iter().any(|l| l.0 == p.id))
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect(),
        upstream_linked,
        phone: cur.user.phone_number.clone().unwrap_or_default(),
        address: cur.user.address.clone().unwrap_or_default(),
        roles: if roles.is_empty() { "none".into() } else { roles.join(", ") },
        min_length: if is_admin {
            state.password_policy.min_length_admin.max(state.password_policy.min_length)
        } else {
            state.password_policy.min_length
        },
        sessions,
        notice,
        error,
    };
    let mut resp = html(status, &page)?;
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c).map_err(WebError::internal)?;
    }
    Ok(resp)
}

/// The session behind a state-changing form, once its CSRF token checked out;
/// `Err` is the response to send instead (to the login page, or "form expired").
pub(crate) async fn session_for_form(
    state: &AppState,
    req: &HttpRequest,
    csrf_field: &str,
) -> Result<Result<Current, HttpResponse>, WebError> {
    let Some(cur) = crate::web::cookies::current(state, req).await? else {
        return Ok(Err(super::login::to_login(state, req)));
    };
    if !csrf::verify(state, req, csrf_field) {
        return Ok(Err(stale_form()));
    }
    Ok(Ok(cur))
}

pub async fn account(
    SignedIn(cur): SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AccountQuery>,
) -> Result<HttpResponse, WebError> {
    render(&state, &req, &cur, StatusCode::OK, notice(q.m.as_deref()), None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: SecretString,
    new_password: SecretString,
}

pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    let fail = |msg: &str| Some(msg.to_owned());
    let busy = |e: PasswordError| match e {
        PasswordError::Busy => WebError(crate::error::AppError::Busy),
        other => WebError::internal(other),
    };

    match reverify_password(&state, &req, &cur, &form.current_password, "user.password_changed").await? {
        Reverified::Yes => {}
        Reverified::No(msg) => return render(&state, &req, &cur, StatusCode::OK, None, fail(msg)).await,
    }
    // Browsers trusted under the old password are trusted no more (but this one).
    let device = req
        .cookie(&crate::web::cookies::cookie_name(&state, super::login::DEVICE_COOKIE))
        .map(|c| c.value().to_owned());
    let actor = format!("user:{}", cur.user.id);
    let change = PasswordChange {
        user: (&cur.user.id, &cur.user.username),
        actor: &actor,
        event: "user.password_changed",
        keep_session: Some(&cur.session.id),
        keep_device: device.as_deref(),
        origin: client_info::origin(&state, &req),
        by_admin: None,
        link: None,
        verified_email: None,
    };
    match password::change_password(&state, change, &form.new_password).await {
        Ok(_) => {}
        Err(ChangeError::Password(PasswordError::Policy(m))) => {
            return render(&state, &req, &cur, StatusCode::OK, None, Some(m)).await;
        }
        Err(ChangeError::Password(e)) => return Err(busy(e)),
        Err(ChangeError::Db(e)) => return Err(e.into()),
        Err(e @ (ChangeError::Refused(_) | ChangeError::LinkUsed)) => return Err(WebError::internal(e)),
    }
    Ok(see_other("/account?m=password_changed"))
}

#[derive(Deserialize)]
pub struct EndSessionForm {
    csrf: String,
    session: String,
}

pub async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<EndSessionForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    // Only the user's own sessions: the filter on user_id is the authorisation.
    let own = session_entity::Entity::find()
        .filter(session_entity::Column::Id.eq(form.session.as_str()))
        .filter(session_entity::Column::UserId.eq(cur.user.id.as_str()))
        .one(&state.db)
        .await?;
    if let Some(s) = own {
        // Everywhere: the session, its refresh-token families, and the
        // back-channel logout of the clients that took part in it.
        crate::oidc::logout::end_session_everywhere(&state, &s.id, &cur.user.id).await?;
        record_audit(
            &state.db,
            AuditEvent::new("session.ended", "success")
                .actor(format!("user:{}", cur.user.id))
                .user(&cur.user.id)
                .source(client_info::ip(&state, &req), client_info::user_agent(&req))
                .detail(json!({ "session": form.session })),
            state.clock.now(),
        )
        .await?;
    }
    if form.session == cur.session.id {
        return Ok(see_other("/login?m=logged_out"));
    }
    Ok(see_other("/account?m=session_ended"))
}

#[derive(Deserialize)]
pub struct RevokeConsentForm {
    csrf: String,
    client: String,
}

/// Withdraws an application's access: the stored consent and its refresh
/// tokens go (its access tokens expire within minutes).
pub async fn revoke_consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<RevokeConsentForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    consent::Entity::delete_many()
        .filter(consent::Column::UserId.eq(cur.user.id.as_str()))
        .filter(consent::Column::ClientId.eq(form.client.as_str()))
        .exec(&txn)
        .await?;
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, sea_orm::sea_query::Expr::val(now.timestamp_millis()))
        .filter(refresh_family::Column::UserId.eq(cur.user.id.as_str()))
        .filter(refresh_family::Column::ClientId.eq(form.client.as_str()))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(&txn)
        .await?;
    let audit_record = AuditEvent::new("oauth.consent_revoked", "success")
        .actor(format!("user:{}", cur.user.id))
        .user(&cur.user.id)
        .client(form.client.as_str())
        .source(client_info::ip(&state, &req), client_info::user_agent(&req));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(see_other("/account?m=consent_revoked"))
}

#[derive(Deserialize)]
pub struct ProfileForm {
    csrf: String,
    #[serde(flatten)]
    fields: super::form::ProfileFields,
}

/// The person's own name, phone number and postal address (the OIDC
/// `profile`, `phone` and `address` claims); an empty field clears it.
pub async fn update_profile(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<ProfileForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    // The e-mail address changes through its own verification loop, not here.
    let patch = form.fields.into_patch(None);
    let ip = client_info::ip(&state, &req);
    match crate::admin::users::update_own_profile(&state, &cur.user.id, ip, client_info::user_agent(&req), patch).await
    {
        Ok(_) => Ok(see_other("/account?m=profile_saved")),
        Err(e @ (crate::admin::AdminError::Invalid(_) | crate::admin::AdminError::Refused(_))) => {
            render(&state, &req, &cur, StatusCode::BAD_REQUEST, None, Some(e.to_string())).await
        }
        Err(e) => Err(WebError::internal(e)),
    }
}

#[derive(Deserialize)]
pub struct EmailForm {
    csrf: String,
    new_email: String,
    current_password: SecretString,
}

/// A new address: after the password again, a link goes to the new address
/// (it becomes the account's when followed) and the present one is told.
pub async fn change_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<EmailForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    match reverify_password(&state, &req, &cur, &form.current_password, "user.email_change_requested").await? {
        Reverified::Yes => {}
        Reverified::No(msg) => return render(&state, &req, &cur, StatusCode::OK, None, Some(msg.to_owned())).await,
    }
    let new = match crate::domain::Email::parse(&form.new_email) {
        Ok(e) => e,
        Err(e) => return render(&state, &req, &cur, StatusCode::BAD_REQUEST, None, Some(e.to_string())).await,
    };
    send_link(&state, &req, &cur, &new).await
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// A confirmation link for the account's present, unconfirmed address.
pub async fn send_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<CsrfOnly>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, .. } = signed;
    let Some(present) = cur.user.email.as_deref().and_then(|e| crate::domain::Email::parse(e).ok()) else {
        return Ok(see_other("/account"));
    };
    send_link(&state, &req, &cur, &present).await
}

async fn send_link(
    state: &AppState,
    req: &HttpRequest,
    cur: &Current,
    to: &crate::domain::Email,
) -> Result<HttpResponse, WebError> {
    use crate::lifecycle::DeliverError;
    match crate::lifecycle::email::request_verification(state, &cur.user, to, client_info::origin(state, req)).await {
        Ok(()) => Ok(see_other("/account?m=email_sent")),
        Err(e @ (DeliverError::Limited | DeliverError::Off)) => {
            render(state, req, cur, StatusCode::TOO_MANY_REQUESTS, None, Some(e.to_string())).await
        }
        Err(DeliverError::Db(e)) => Err(e.into()),
        Err(e @ DeliverError::Mail(_)) => Err(WebError::internal(e)),
    }
}

crate::web::form::csrf_form!(CsrfOnly, EmailForm, EndSessionForm, PasswordForm, ProfileForm, RevokeConsentForm);
