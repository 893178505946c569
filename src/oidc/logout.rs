//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and
//! back-channel logout (OpenID Connect Back-Channel Logout 1.0).

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::session;
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::entities::{refresh_family, session_client};
use crate::storage::{AuditEvent, record_audit};

/// Ends a browser session everywhere: the record, its refresh-token families,
/// and — in the background — each client that registered a back-channel
/// logout URI and took part in it.
pub async fn end_session_everywhere(state: &AppState, session_id: &str, user_id: &str) -> Result<(), sea_orm::DbErr> {
    let now_ms = state.clock.now().timestamp_millis();
    session::end(&state.db, session_id).await?;
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
        .filter(refresh_family::Column::SessionId.eq(session_id))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(&state.db)
        .await?;
    let joined =
        session_client::Entity::find().filter(session_client::Column::SessionId.eq(session_id)).all(&state.db).await?;
    session_client::Entity::delete_many()
        .filter(session_client::Column::SessionId.eq(session_id))
        .exec(&state.db)
        .await?;
    for sc in joined {
        let c = match crate::storage::clients::find(&state.db, &sc.client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "no back-channel logout for a client");
                continue;
            }
        };
        let Some(uri) = c.backchannel_logout_uri.clone() else { continue };
        let Ok(token) = logout_token(state, &c, user_id, session_id) else { continue };
        let st = state.clone();
        let client_id = c.client_id.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build();
            let outcome = match http {
                Ok(h) => match h.post(&uri).form(&[("logout_token", token.as_str())]).send().await {
                    Ok(r) if r.status().is_success() => "success",
                    _ => "failure",
                },
                Err(_) => "failure",
            };
            let _ = record_audit(
                &st.db,
                AuditEvent::new("oidc.backchannel_logout", outcome).client(client_id),
                st.clock.now(),
            )
            .await;
        });
    }
    Ok(())
}

/// After sessions were ended in a committed transaction (credential change,
/// disabling, an administrator's "end sessions"): the back-channel logout of
/// every client that took part in them. Best effort, like any back-channel
/// call: a failure is logged, never an error for the caller.
pub async fn notify_ended(state: &AppState, user_id: &str, session_ids: &[String]) {
    for id in session_ids {
        if let Err(e) = end_session_everywhere(state, id, user_id).await {
            tracing::warn!(error = %e, "back-channel logout after ending sessions failed");
        }
    }
}

/// Back-Channel Logout 1.0 §2.4.
fn logout_token(state: &AppState, c: &Client, sub: &str, sid: &str) -> Result<String, crate::tokens::jwt::JwtError> {
    let now = state.clock.now().timestamp();
    let alg = c.id_token_alg;
    let claims = json!({
        "iss": state.settings.issuer(),
        "sub": sub,
        "aud": c.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sid": sid,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    crate::tokens::jwt::sign(&state.keyring(), &state.rng, alg, "logout+jwt", &claims)
}

/// The validated logout request.
pub struct LogoutRequest {
    pub hint: Option<Value>,
    pub redirect: Option<String>,
}

pub async fn validate(state: &AppState, p: &HashMap<String, String>) -> Result<LogoutRequest, &'static str> {
    let hint = match p.get("id_token_hint").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match crate::tokens::jwt::verify(&state.keyring(), t, Some("JWT")) {
            // An expired hint is fine (§2): it only identifies the session.
            Ok(v) if v.claims.get("iss").and_then(Value::as_str) == Some(state.settings.issuer()) => Some(v.claims),
            _ => return Err("The logout request carries an ID token that was not issued here."),
        },
    };
    let hint_aud = hint
        .as_ref()
        .and_then(|h| h.get("aud"))
        .and_then(|a| a.as_str().map(str::to_owned).or_else(|| a.get(0).and_then(Value::as_str).map(str::to_owned)));
    let client_id = p.get("client_id").filter(|c| !c.is_empty()).cloned().or(hint_aud.clone());
    if let (Some(a), Some(c)) = (&hint_aud, p.get("client_id"))
        && a != c
    {
        return Err("The logout request names two different applications.");
    }
    let redirect = match p.get("post_logout_redirect_uri").filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let Some(cid) = client_id else {
                return Err("The logout request does not say which application it comes from.");
            };
            let Ok(Some(c)) = crate::storage::clients::find(&state.db, &cid).await else {
                return Err("The application is not registered here.");
            };
            // Exact match against the registered list; never an open redirect.
            if !c.post_logout_redirect_uris.iter().any(|r| r == uri) {
                return Err("The address to return to after logout is not registered for the application.");
            }
            let mut u = url::Url::parse(uri).map_err(|_| "The return address is invalid.")?;
            if let Some(s) = p.get("state") {
                u.query_pairs_mut().append_pair("state", s);
            }
            Some(u.to_string())
        }
    };
    Ok(LogoutRequest { hint, redirect })
}
