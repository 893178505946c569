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

pub async fn reauth_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ReauthForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let next = safe_next(form.next.as_deref());
    // Both factors again; each check counts against the account's throttle.
    let ok = crate::web::reauth::reauth(&state, &req, &a.cur, Some(&form.password), Factor::Password).await?
        && crate::web::reauth::reauth(&state, &req, &a.cur, Some(&form.code), Factor::Code).await?;
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
    let source = crate::web::login::source_of(&state, &req);
    let done =
        crate::web::login::finish_login(&state, &req, &a.cur.user.id, &[AMR_PASSWORD, AMR_OTP], "2", &source, None)
            .await?;
    let sep = if next.contains('?') { '&' } else { '?' };
    Ok(done.redirect(&format!("{next}{sep}m=reauth")))
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
