//! Limits on what one client can hold open: requests in progress per source
//! address, and the time a request body may take to arrive.
//!
//! actix-web bounds the request head (`client_request_timeout_ms`) but not
//! the body: a client that sends a byte every few seconds would keep a
//! connection and a handler's buffer for ever. Every handler reads its body
//! whole and bounded anyway (raw bytes or a `StrictForm`), so this middleware
//! reads it first — at most [`MAX_BODY`] bytes, within
//! `client_body_timeout_ms` — and hands the handler the buffered bytes.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use futures_util::StreamExt;

use crate::state::AppState;

/// The largest body any endpoint takes (forms are further bounded at 16 KiB).
pub const MAX_BODY: usize = 64 * 1024;

fn refuse(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    r.force_close();
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.insert_header(("Retry-After", "1"));
    }
    r.json(serde_json::json!({ "error": error, "error_description": description }))
}

/// The middleware: admit per address, then read the body within its time.
pub async fn bounded_requests(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let ip = crate::web::client_info::ip(&state, req.request());
    let _admitted = match ip {
        Some(ip) => {
            let key = crate::authn::throttle::ip_key(&ip);
            match state.in_flight.admit(key, state.settings.max_requests_per_ip) {
                Some(a) => Some(a),
                None => {
                    tracing::warn!(event = "rate_limited", ip = %ip, "too many requests in progress from one address");
                    let resp = refuse(
                        StatusCode::TOO_MANY_REQUESTS,
                        "temporarily_unavailable",
                        "too many requests in progress from this address",
                    );
                    return Ok(req.into_response(resp).map_into_right_body());
                }
            }
        }
        None => None,
    };
    let has_body = req.headers().contains_key(actix_web::http::header::CONTENT_LENGTH)
        || req.headers().contains_key(actix_web::http::header::TRANSFER_ENCODING);
    if has_body {
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            let resp = refuse(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large");
            return Ok(req.into_response(resp).map_into_right_body());
        }
        let mut payload = req.take_payload();
        let deadline = Duration::from_millis(state.settings.client_body_timeout_ms);
        let read = tokio::time::timeout(deadline, async {
            let mut buf = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        })
        .await;
        let body = match read {
            Ok(Ok(b)) => b,
            Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => {
                let resp = refuse(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large");
                return Ok(req.into_response(resp).map_into_right_body());
            }
            Ok(Err(_)) => {
                let resp = refuse(StatusCode::BAD_REQUEST, "invalid_request", "the request body could not be read");
                return Ok(req.into_response(resp).map_into_right_body());
            }
            Err(_) => {
                tracing::info!(event = "slow_body", "a request body did not arrive in time");
                let resp = refuse(StatusCode::REQUEST_TIMEOUT, "invalid_request", "the request body took too long");
                return Ok(req.into_response(resp).map_into_right_body());
            }
        };
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    // The body is here: from now on the request sees one instant.
    crate::clock::request_scope(&state.clock, next.call(req)).await.map(ServiceResponse::map_into_left_body)
}
