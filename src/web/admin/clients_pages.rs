//! The client pages and the access-policy form.

use super::*;

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    title: &'static str,
    csrf: String,
    me: String,
    clients: Vec<clients::ClientView>,
    notice: Option<&'static str>,
    /// An initial access token just made, shown this once.
    token: Option<String>,
}

pub async fn clients_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::ClientsRead, "read clients"));
    let list = clients::list(&state, &a.actor(&state, &req)).await.map_err(admin_error)?;
    let notice = (q.m.as_deref() == Some("deleted")).then_some(crate::web::ui::t("admin_msg.client_deleted"));
    let p = ClientsPage {
        title: crate::web::ui::t("admin.clients"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        clients: list,
        notice,
        token: None,
    };
    a.page(StatusCode::OK, &p)
}

/// Makes an initial access token for dynamic client registration (RFC 7591)
/// and shows it once (needs `clients:write`).
pub async fn registration_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let token =
        clients::registration::create_initial_token(&state, &a.actor(&state, &req)).await.map_err(admin_error)?;
    let list = clients::list(&state, &a.actor(&state, &req)).await.map_err(admin_error)?;
    let p = ClientsPage {
        title: crate::web::ui::t("admin.clients"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        clients: list,
        notice: Some(crate::web::ui::t("admin.registration_token_made")),
        token: Some(token),
    };
    a.page(StatusCode::OK, &p)
}

#[derive(Template)]
#[template(path = "admin/client.html")]
struct ClientPage {
    title: &'static str,
    csrf: String,
    me: String,
    c: clients::ClientView,
    policy: String,
    s: Settings,
    can_write: bool,
    notice: Option<String>,
    error: Option<String>,
    /// A secret just made, shown this once.
    secret: Option<String>,
}

/// What a page shows besides the client: values as typed (after a refused
/// form), a message, a new secret.
#[derive(Default)]
struct Extra {
    policy: Option<String>,
    settings: Option<Settings>,
    error: Option<String>,
    notice: Option<String>,
    secret: Option<String>,
}

async fn render_client(
    state: &AppState,
    a: &Admin,
    client_id: &str,
    status: StatusCode,
    extra: Extra,
) -> Result<HttpResponse, WebError> {
    if !a.can(Permission::ClientsRead) {
        return Ok(forbidden("read clients"));
    }
    let (c, jwks) = match clients::show_for_edit(state, &a.reader(), client_id).await {
        Ok(c) => c,
        Err(AdminError::NotFound { .. }) => {
            return Ok(error_page(
                StatusCode::NOT_FOUND,
                crate::web::ui::t("admin_msg.no_such_client"),
                crate::web::ui::t("admin_msg.no_such_client_text"),
            ));
        }
        Err(e) => return Err(admin_error(e)),
    };
    let policy = extra.policy.unwrap_or_else(|| {
        c.access_policy.as_ref().and_then(|p| serde_json::to_string_pretty(p).ok()).unwrap_or_default()
    });
    let s = match extra.settings {
        Some(s) => s,
        None => Settings::of(&c, jwks),
    };
    let p = ClientPage {
        title: crate::web::ui::t("admin.client"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        c,
        policy,
        s,
        can_write: a.can(Permission::ClientsWrite),
        notice: extra.notice,
        error: extra.error,
        secret: extra.secret,
    };
    a.page(status, &p)
}

/// The answer to a client form: back to the page with a notice, or the page
/// again with the message and what was typed.
async fn finish(
    state: &AppState,
    a: &Admin,
    client_id: &str,
    done: Result<(), AdminError>,
    notice: &str,
    again: Extra,
) -> Result<HttpResponse, WebError> {
    match done {
        Ok(()) => Ok(see_other(&format!("/admin/clients/{}?m={notice}", urlencode(client_id)))),
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(AdminError::ForbiddenTarget(m)) => {
            Ok(error_page(StatusCode::FORBIDDEN, crate::web::ui::t("admin_msg.not_allowed"), &m))
        }
        Err(AdminError::NotFound { .. }) => Ok(error_page(
            StatusCode::NOT_FOUND,
            crate::web::ui::t("admin_msg.no_such_client"),
            crate::web::ui::t("admin_msg.no_such_client_text"),
        )),
        Err(e @ (AdminError::Invalid(_) | AdminError::Refused(_))) => {
            let again = Extra { error: Some(e.to_string()), ..again };
            render_client(state, a, client_id, StatusCode::BAD_REQUEST, again).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

pub async fn client_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    let notice = match q.m.as_deref() {
        Some("policy") => Some(crate::web::ui::t("admin_msg.policy_saved").to_owned()),
        Some("settings") => Some(crate::web::ui::t("admin_msg.settings_saved").to_owned()),
        _ => None,
    };
    render_client(&state, &a, &path, StatusCode::OK, Extra { notice, ..Default::default() }).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    /// The policy as JSON; empty removes it.
    policy: String,
}

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
    let done = match parsed {
        Ok(policy) => {
            let patch = clients::ClientPatch { access_policy: Some(policy), ..Default::default() };
            clients::update(&state, &a.actor(&state, &req), &client_id, patch).await.map(drop)
        }
        Err(e) => Err(AdminError::Refused(format!("{}: {}", e.field, e.reason))),
    };
    finish(&state, &a, &client_id, done, "policy", Extra { policy: Some(typed), ..Default::default() }).await
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    /// For a deletion: the client id, typed again.
    confirm: Option<String>,
}

/// A new secret for a confidential client, shown once on the page; the old
/// one stops working at once. Needs a recent login, like every credential.
pub async fn client_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: StrictForm<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let client_id = path.into_inner();
    if !a.recent(&state) {
        return Ok(reauth_first(&format!("/admin/clients/{client_id}")));
    }
    match clients::rotate_secret(&state, &a.actor(&state, &req), &client_id).await {
        Ok(created) => {
            use secrecy::ExposeSecret;
            let secret = created.secret.map(|s| s.expose_secret().to_owned());
            let notice = Some(
                "A new secret was made; the old one no longer works. Copy it now: it is not shown again.".to_owned(),
            );
            render_client(&state, &a, &client_id, StatusCode::OK, Extra { secret, notice, ..Default::default() }).await
        }
        Err(e) => finish(&state, &a, &client_id, Err(e), "secret", Extra::default()).await,
    }
}

/// Deletes a client (its codes, tokens and consents go with it). The client
/// id must be typed again; needs a recent login.
pub async fn client_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: StrictForm<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let client_id = path.into_inner();
    if form.confirm.as_deref().map(str::trim) != Some(client_id.as_str()) {
        let error = Some(crate::web::ui::tf("admin_msg.confirm_client", "id", &client_id));
        return render_client(&state, &a, &client_id, StatusCode::BAD_REQUEST, Extra { error, ..Default::default() })
            .await;
    }
    if !a.recent(&state) {
        return Ok(reauth_first(&format!("/admin/clients/{client_id}")));
    }
    match clients::remove(&state, &a.actor(&state, &req), &client_id).await {
        Ok(()) => Ok(see_other("/admin/clients?m=deleted")),
        Err(e) => finish(&state, &a, &client_id, Err(e), "deleted", Extra::default()).await,
    }
}

/// The settings form's fields, as text (from the client, or as typed).
pub(super) struct Settings {
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_authorization_code: bool,
    grant_refresh_token: bool,
    grant_client_credentials: bool,
    grant_device_code: bool,
    grant_token_exchange: bool,
    scopes: String,
    resources: String,
    roles: String,
    first_party: bool,
    require_mfa: bool,
    pkce_optional: bool,
    id_token_alg: String,
    backchannel_logout_uri: String,
    refresh_grace_secs: String,
    jwks: String,
    profile: String,
    dpop: bool,
    require_par: bool,
}

impl Settings {
    fn of(c: &clients::ClientView, jwks: Option<String>) -> Self {
        let has = |g: &str| c.grant_types.iter().any(|x| x == g);
        Self {
            name: c.name.clone().unwrap_or_default(),
            redirect_uris: c.redirect_uris.join("\n"),
            post_logout_redirect_uris: c.post_logout_redirect_uris.join("\n"),
            grant_authorization_code: has("authorization_code"),
            grant_refresh_token: has("refresh_token"),
            grant_client_credentials: has("client_credentials"),
            grant_device_code: has(crate::oauth::device::GRANT),
            grant_token_exchange: has(crate::oauth::exchange::GRANT),
            scopes: c.scopes.join(" "),
            resources: c.resources.join("\n"),
            roles: c.roles.join(" "),
            first_party: c.first_party,
            require_mfa: c.require_mfa,
            pkce_optional: c.pkce == "optional",
            id_token_alg: c.id_token_alg.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone().unwrap_or_default(),
            refresh_grace_secs: c.refresh_grace_secs.map(|s| s.to_string()).unwrap_or_default(),
            jwks: jwks.unwrap_or_default(),
            profile: c.profile.clone().unwrap_or_default(),
            dpop: c.dpop,
            require_par: c.require_par,
        }
    }

    fn of_form(f: &SettingsForm) -> Self {
        Self {
            name: f.name.clone(),
            redirect_uris: f.redirect_uris.clone(),
            post_logout_redirect_uris: f.post_logout_redirect_uris.clone(),
            grant_authorization_code: f.grant_authorization_code.is_some(),
            grant_refresh_token: f.grant_refresh_token.is_some(),
            grant_client_credentials: f.grant_client_credentials.is_some(),
            grant_device_code: f.grant_device_code.is_some(),
            grant_token_exchange: f.grant_token_exchange.is_some(),
            scopes: f.scopes.clone(),
            resources: f.resources.clone(),
            roles: f.roles.clone(),
            first_party: f.first_party.is_some(),
            require_mfa: f.require_mfa.is_some(),
            pkce_optional: f.pkce == "optional",
            id_token_alg: f.id_token_alg.clone(),
            backchannel_logout_uri: f.backchannel_logout_uri.clone(),
            refresh_grace_secs: f.refresh_grace_secs.clone(),
            jwks: f.jwks.clone(),
            profile: f.profile.clone(),
            dpop: f.dpop.is_some(),
            require_par: f.require_par.is_some(),
        }
    }
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    name: String,
    /// One URI per line.
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_authorization_code: Option<String>,
    grant_refresh_token: Option<String>,
    grant_client_credentials: Option<String>,
    grant_device_code: Option<String>,
    grant_token_exchange: Option<String>,
    /// Space-separated.
    scopes: String,
    /// One resource indicator per line.
    resources: String,
    /// Space- or comma-separated.
    roles: String,
    first_party: Option<String>,
    require_mfa: Option<String>,
    /// `required` or `optional`.
    pkce: String,
    id_token_alg: String,
    backchannel_logout_uri: String,
    /// Seconds (0–60); empty: strict rotation.
    refresh_grace_secs: String,
    /// A JWK Set (JSON); empty: none.
    jwks: String,
    /// `fapi2` or empty.
    #[serde(default)]
    profile: String,
    dpop: Option<String>,
    require_par: Option<String>,
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// The form as a patch of the fields that differ from the client `c` (whose
/// key set is `jwks`) — every field but the access policy (its own form).
/// Only what changed is sent, so a rename needs neither `roles:write` nor a
/// recent login; new keys or redirect URIs need the latter
/// ([`clients::ClientPatch::touches_credentials`]).
fn patch_of(f: &SettingsForm, c: &clients::ClientView, jwks: Option<&str>) -> Result<clients::ClientPatch, String> {
    fn changed<T: PartialEq>(new: T, old: T) -> Option<T> {
        (new != old).then_some(new)
    }
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let grace = match f.refresh_grace_secs.trim() {
        "" => None,
        n => Some(n.parse::<i32>().map_err(|_| "refresh grace: a whole number of seconds (0–60)".to_owned())?),
    }
    .filter(|g| *g != 0);
    let typed_jwks: Option<serde_json::Value> = match f.jwks.trim() {
        "" => None,
        t => Some(serde_json::from_str(t).map_err(|e| format!("jwks: not valid JSON ({e})"))?),
    };
    let stored_jwks: Option<serde_json::Value> = jwks.and_then(|j| serde_json::from_str(j).ok());
    let grants = [
        (f.grant_authorization_code.is_some(), "authorization_code"),
        (f.grant_refresh_token.is_some(), "refresh_token"),
        (f.grant_client_credentials.is_some(), "client_credentials"),
        (f.grant_device_code.is_some(), crate::oauth::device::GRANT),
        (f.grant_token_exchange.is_some(), crate::oauth::exchange::GRANT),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, g)| g.to_owned())
    .collect::<Vec<_>>();
    if grants.is_empty() {
        return Err("grants: choose at least one".into());
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        v
    };
    Ok(clients::ClientPatch {
        name: changed(text(&f.name), c.name.clone()),
        redirect_uris: changed(lines(&f.redirect_uris), c.redirect_uris.clone()),
        post_logout_redirect_uris: changed(lines(&f.post_logout_redirect_uris), c.post_logout_redirect_uris.clone()),
        grant_types: changed(sorted(grants), sorted(c.grant_types.clone())),
        scopes: changed(sorted(words(&f.scopes)), sorted(c.scopes.clone())),
        roles: changed(sorted(words(&f.roles)), sorted(c.roles.clone())),
        first_party: changed(f.first_party.is_some(), c.first_party),
        pkce: changed(f.pkce.trim().to_owned(), c.pkce.to_owned()),
        id_token_alg: changed(f.id_token_alg.trim().to_owned(), c.id_token_alg.clone()),
        require_mfa: changed(f.require_mfa.is_some(), c.require_mfa),
        backchannel_logout_uri: changed(text(&f.backchannel_logout_uri), c.backchannel_logout_uri.clone()),
        jwks: changed(typed_jwks, stored_jwks),
        access_policy: None,
        resources: changed(lines(&f.resources), c.resources.clone()),
        refresh_grace_secs: changed(grace, c.refresh_grace_secs),
        profile: changed(text(&f.profile), c.profile.clone()),
        dpop: changed(f.dpop.is_some(), c.dpop),
        require_par: changed(f.require_par.is_some(), c.require_par),
    })
}

pub async fn client_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: StrictForm<SettingsForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let client_id = path.into_inner();
    let typed = Settings::of_form(&form);
    let (current, jwks) = match clients::show_for_edit(&state, &a.reader(), &client_id).await {
        Ok(c) => c,
        Err(e) => return finish(&state, &a, &client_id, Err(e), "settings", Extra::default()).await,
    };
    let done = match patch_of(&form, &current, jwks.as_deref()) {
        Ok(patch) if patch.touches_credentials() && !a.recent(&state) => {
            return Ok(reauth_first(&format!("/admin/clients/{client_id}")));
        }
        Ok(patch) => clients::update(&state, &a.actor(&state, &req), &client_id, patch).await.map(drop),
        Err(msg) => Err(AdminError::Refused(msg)),
    };
    let again = Extra { settings: Some(typed), ..Default::default() };
    finish(&state, &a, &client_id, done, "settings", again).await
}
