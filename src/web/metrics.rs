//! `GET /metrics` (Prometheus text format) and the access log.
//!
//! Series: requests by method, route pattern and status, with a latency
//! histogram per route and the SQL statements sent per route
//! (`storage::statements`); logins and second-factor checks by outcome (never by
//! user); tokens issued by grant; refresh-token reuse detected. Route
//! patterns, not paths: no user input becomes a label.
//!
//! `/metrics` answers loopback callers, or anyone presenting
//! `metrics_token` as a bearer token when one is configured.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// Counts every request and writes the access log line: method, route
/// pattern, status, duration, request id — never the query string.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // A fixed set: actix accepts any method name, and every label value is a
    // series kept for ever.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "OTHER".to_owned(),
    };
    let (res, statements) = crate::storage::statements::counted(next.call(req)).await;
    let res = res?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = state {
        state.metrics.request(&method, &route, status, elapsed.as_secs_f64(), statements);
    }
    tracing::info!(
        target: "access",
        method = %method,
        route = %route,
        status,
        db_statements = statements,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}

pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let token_ok = state.settings.metrics_token.as_ref().is_some_and(|want| {
        use secrecy::ExposeSecret;
        req.headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|got| crate::crypto::constant_time_eq(got.trim().as_bytes(), want.expose_secret().as_bytes()))
    });
    // Loopback, and not relayed by a proxy on the same host.
    // Behind a proxy the operator told us about, every caller may look like
    // loopback: then only the token opens it.
    let relayed = state.settings.trust_forwarded_for
        || req.headers().contains_key("x-forwarded-for")
        || req.headers().contains_key("forwarded")
        || req.headers().contains_key("x-real-ip");
    let loopback = !relayed && req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    if !(token_ok || loopback) {
        return HttpResponse::build(StatusCode::FORBIDDEN)
            .json(serde_json::json!({ "detail": "metrics are served to loopback, or with the metrics_token" }));
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
