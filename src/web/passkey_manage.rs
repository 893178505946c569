//! The account page's passkey forms: rename one, remove one (with the
//! password again; the other sessions end, relying parties are told).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::client_info;
use super::form::SignedInForm;
use super::login::see_other;
use super::pages::WebError;
use crate::authn::passkey;
use crate::state::AppState;
use crate::storage::{AuditEvent, record_audit};

#[derive(Deserialize)]
pub struct RenameForm {
    csrf: String,
    id: String,
    name: String,
}

pub async fn rename(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<RenameForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    if passkey::rename(&state.db, &cur.user.id, &form.id, &form.name).await? {
        record_audit(
            &state.db,
            AuditEvent::new("passkey.renamed", "success")
                .actor(format!("user:{}", cur.user.id))
                .user(&cur.user.id)
                .source(client_info::ip(&state, &req), client_info::user_agent(&req))
                .detail(json!({ "credential": form.id, "name": passkey::clean_name(&form.name) })),
            state.clock.now(),
        )
        .await?;
    }
    Ok(see_other("/account?m=passkey_renamed"))
}

#[derive(Deserialize)]
pub struct RemoveForm {
    csrf: String,
    id: String,
    current_password: secrecy::SecretString,
}

/// Removing a passkey needs the password again and a recent sign-in as
/// strong as the account's strongest factor (`reauth::may_change_factors`:
/// a borrowed session, or one opened with a phished password and TOTP code,
/// cannot strip the owner's passkey and with it the passkey requirement);
/// it ends the account's other sessions, forgets other trusted browsers and
/// tells relying parties (back-channel logout). Someone who lost the key
/// signs in with a recovery code, adds a new passkey, then removes the old.
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<RemoveForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    match super::reauth::reverify_password(&state, &req, &cur, &form.current_password, "passkey.removed").await? {
        super::reauth::Reverified::Yes => {}
        super::reauth::Reverified::No(msg) => {
            return super::account::render(&state, &req, &cur, StatusCode::OK, None, Some(msg.into())).await;
        }
    }
    if !super::reauth::may_change_factors(&state, &cur).await? {
        let msg = crate::web::ui::t("messages.sign_in_again_to_remove");
        return super::account::render(&state, &req, &cur, StatusCode::OK, None, Some(msg.into())).await;
    }
    let device = req
        .cookie(&crate::web::cookies::cookie_name(&state, super::login::DEVICE_COOKIE))
        .map(|c| c.value().to_owned());
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let Some(row) = passkey::remove(&txn, &cur.user.id, &form.id).await? else {
        return Ok(see_other("/account"));
    };
    let ended =
        crate::session::end_all_for_user(&txn, &cur.user.id, Some(&cur.session.id), now.timestamp_millis()).await?;
    crate::authn::login::forget_devices(&state, &txn, &cur.user.id, device.as_deref()).await?;
    let audit_record = AuditEvent::new("passkey.removed", "success")
        .actor(format!("user:{}", cur.user.id))
        .user(&cur.user.id)
        .source(client_info::ip(&state, &req), client_info::user_agent(&req))
        .detail(json!({ "credential": row.credential_id, "name": row.name, "sessions_ended": ended.len() }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    crate::oidc::logout::notify_ended(&state, &cur.user.id, &ended).await;
    Ok(see_other("/account?m=passkey_removed"))
}

crate::web::form::csrf_form!(RemoveForm, RenameForm);
