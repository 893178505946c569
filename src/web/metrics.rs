//! `GET /metrics` (Prometheus text format) and the access log.
//!
//! Series: requests by method, route pattern and status, with a latency
//! histogram per route; logins and second-factor checks by outcome (never by
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
use actix_web::{HttpRequest, HttpResponse, get, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The application's metrics and their registry (one per instance).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    logins: Family<OutcomeLabels, Counter>,
    second_factor: Family<OutcomeLabels, Counter>,
    tokens: Family<GrantLabels, Counter>,
    refresh_reuse: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let logins = Family::<OutcomeLabels, Counter>::default();
        let second_factor = Family::<OutcomeLabels, Counter>::default();
        let tokens = Family::<GrantLabels, Counter>::default();
        let refresh_reuse = Counter::default();
        registry.register("http_requests", "HTTP requests by method, route pattern and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route pattern", latency.clone());
        registry.register("logins", "Password steps by outcome (success, failure, rate_limited)", logins.clone());
        registry.register("second_factor_checks", "Second-factor checks by outcome", second_factor.clone());
        registry.register("tokens_issued", "Access tokens issued by grant type", tokens.clone());
        registry.register(
            "refresh_token_reuse",
            "Rotated-out refresh tokens presented again (families revoked)",
            refresh_reuse.clone(),
        );
        Self { registry, requests, latency, logins, second_factor, tokens, refresh_reuse }
    }
}

impl Metrics {
    pub fn login(&self, result: &str) {
        self.logins.get_or_create(&OutcomeLabels { result: result.to_owned() }).inc();
    }

    pub fn second_factor(&self, result: &str) {
        self.second_factor.get_or_create(&OutcomeLabels { result: result.to_owned() }).inc();
    }

    pub fn token_issued(&self, grant: &str) {
        self.tokens.get_or_create(&GrantLabels { grant: grant.to_owned() }).inc();
    }

    pub fn refresh_reuse(&self) {
        self.refresh_reuse.inc();
    }

    fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

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
    let res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = state {
        let m = &state.metrics;
        m.requests
            .get_or_create(&RequestLabels { method: method.clone(), route: route.clone(), status: status.to_string() })
            .inc();
        m.latency.get_or_create(&RouteLabels { route: route.clone() }).observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        target: "access",
        method = %method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}

#[get("/metrics")]
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
