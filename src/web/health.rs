//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers and the signing keys are loaded.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !crate::storage::ping(&state.db).await {
        return HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "reason": "database" }));
    }
    if !state.keyring().is_ready() {
        return HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "reason": "keys" }));
    }
    HttpResponse::Ok().json(json!({ "status": "ready" }))
}
