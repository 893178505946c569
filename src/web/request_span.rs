//! The span every request runs in: its request id and, for a 5xx, that it
//! failed. The method, route, status and duration are the access log's (one
//! line each, `web::metrics::record`), so the span does not repeat them on
//! every event; a 4xx is the client's error, not ours, and leaves the span's
//! status unset (OpenTelemetry semantic conventions for server spans) with no
//! extra warning — the refusal itself is logged or audited where it is decided.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default();
        tracing::info_span!("request", request_id = %id, otel.status_code = tracing::field::Empty, error = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let failed = match outcome {
            Ok(r) if r.status().is_server_error() => {
                r.response().error().map(|e| e.to_string()).or(Some(String::new()))
            }
            Ok(_) => None,
            Err(e) if e.as_response_error().status_code().is_server_error() => Some(e.to_string()),
            Err(_) => None,
        };
        if let Some(why) = failed {
            span.record("otel.status_code", "ERROR");
            if !why.is_empty() {
                span.record("error", why.as_str());
            }
        }
    }
}
