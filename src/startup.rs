//! Builds the HTTP application from the state: middleware, each module's
//! routes, and the listener.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::state::AppState;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the configured address (port 0 picks a free port, as tests do).
    pub fn build(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.settings.bind)?;
        Self::build_on(listener, state)
    }

    /// Serves on a listener the caller bound (tests learn the port first, to set
    /// the issuer to it).
    pub fn build_on(listener: TcpListener, state: AppState) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let https = state.settings.is_https();
        let discovery = web::Data::new(crate::oidc::Discovery(web::Bytes::from(crate::oidc::discovery_document(
            state.settings.issuer(),
        ))));
        let request_timeout = std::time::Duration::from_millis(state.settings.client_request_timeout_ms);
        let keep_alive = std::time::Duration::from_secs(state.settings.keep_alive_secs);
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(discovery.clone())
                // Bodies are bounded where they are read (every handler takes
                // raw bytes or a StrictForm): nothing larger is buffered.
                .app_data(web::PayloadConfig::new(64 * 1024))
                .app_data(query_config())
                .configure(crate::web::configure)
                .configure(crate::oauth::configure)
                .configure(crate::oidc::configure)
                .configure(crate::admin::api::configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(crate::web::limits::bounded_requests))
                .wrap(from_fn(crate::web::metrics::record))
                .wrap(from_fn(crate::web::headers::request_id_header))
                .wrap(tracing_actix_web::TracingLogger::default())
                .wrap(crate::web::headers::security_headers(https))
        })
        // Slow clients: the request head must arrive in time (then 408 and
        // the connection closes); idle keep-alive connections are closed.
        .client_request_timeout(request_timeout)
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .keep_alive(keep_alive)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests (graceful).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "not found" }))
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, req| {
        tracing::debug!(error = %err, "rejected query string");
        // The admin API answers in RFC 9457 problems, like its other errors.
        let resp = if req.path().starts_with("/admin/api/") {
            HttpResponse::BadRequest().content_type("application/problem+json").body(
                json!({ "type": "about:blank", "title": "Invalid query", "status": 400,
                    "detail": "the query string has an unknown or malformed parameter" })
                .to_string(),
            )
        } else {
            HttpResponse::BadRequest().json(json!({ "error": "invalid query string" }))
        };
        actix_web::error::InternalError::from_response(err, resp).into()
    })
}
