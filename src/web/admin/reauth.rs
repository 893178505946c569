//! Re-authentication before credential-changing admin actions.

use super::*;

#[derive(Template)]
#[template(path = "admin/reauth.html")]
struct ReauthPage {
    title: &'static str,
    csrf: String,
    me: String,
    next: String,
    failed: bool,
    /// This administrator confirms with a passkey (their policy needs one):
    /// the password here, then the passkey step of a login.
    passkey: bool,
}

/// Whether this administrator's fresh confirmation must be a passkey.
async fn confirms_with_passkey(state: &AppState, a: &Admin) -> Result<bool, WebError> {
    let need = crate::authn::mfa::required_for(state, &state.db, &a.cur.user.id).await?;
    Ok(need >= crate::policy::Assurance::PhishingResistant && state.webauthn.is_some())
}

#[derive(Deserialize)]
pub struct ReauthQuery {
    next: Option<String>,
}

/// Only a path on the admin pages: never an open redirect, and nothing a
/// `Location` header cannot carry (control characters, non-ASCII).
fn safe_next(next: Option<&str>) -> String {
    next.and_then(crate::web::login::local_page)
        .filter(|n| n.starts_with("/admin/"))
        .unwrap_or("/admin/users")
        .to_owned()
}

pub async fn reauth_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ReauthQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    let p = ReauthPage {
        title: crate::web::ui::t("admin.confirm_it_is_you"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        next: safe_next(q.next.as_deref()),
        failed: false,
        passkey: confirms_with_passkey(&state, &a).await?,
    };
    a.page(StatusCode::OK, &p)
}

#[derive(Deserialize)]
pub struct ReauthForm {
    csrf: String,
    password: SecretString,
    code: Option<SecretString>,
    next: Option<String>,
}

pub async fn reauth_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ReauthForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let next = safe_next(form.next.as_deref());
    let passkey = confirms_with_passkey(&state, &a).await?;
    // Both factors again; each check counts against the account's throttle.
    // An administrator whose policy needs a passkey gives the password here
    // and the passkey at the login's second step (a code would give a
    // session too weak for the admin pages).
    let ok = crate::web::reauth::reauth(&state, &req, &a.cur, Some(&form.password), Factor::Password).await?
        && (passkey || crate::web::reauth::reauth(&state, &req, &a.cur, form.code.as_ref(), Factor::Code).await?);
    let now = state.clock.now();
    crate::storage::record_audit(
        &state.db,
        crate::storage::AuditEvent::new("admin.reauth", if ok { "success" } else { "failure" })
            .user(&a.cur.user.id)
            .source(client_info::ip(&state, &req), client_info::user_agent(&req))
            .detail(serde_json::json!({ "second_step": if passkey { "passkey" } else { "code" } })),
        now,
    )
    .await?;
    if !ok {
        let p = ReauthPage {
            title: crate::web::ui::t("admin.confirm_it_is_you"),
            csrf: a.csrf.clone(),
            me: a.cur.user.username.clone(),
            next,
            failed: true,
            passkey,
        };
        return a.page(StatusCode::UNAUTHORIZED, &p);
    }
    let sep = if next.contains('?') { '&' } else { '?' };
    let back = format!("{next}{sep}m=reauth");
    if passkey {
        // The passkey step of a login: it makes the new session.
        return crate::web::login::challenge_redirect(
            &state,
            &a.cur.user.id,
            crate::authn::login::ChallengePurpose::Mfa,
            false,
            Some(back),
            None,
            "/login/mfa",
        )
        .await;
    }
    // A fresh authentication with both factors: a new session (new id and
    // auth_time; the old one ends), as at any login.
    let source = crate::web::login::source_of(&state, &req);
    let done =
        crate::web::login::finish_login(&state, &req, &a.cur.user.id, &[AMR_PASSWORD, AMR_OTP], "2", &source, None)
            .await?;
    Ok(done.redirect(&back))
}

// ---- clients, roles, audit --------------------------------------------------

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
