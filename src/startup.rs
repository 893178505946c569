//! Builds the HTTP application from the state: middleware, each module's
//! routes, and the listener.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::crypto::master_key::KeySource;
use crate::state::{AppState, StartError};

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
        if state.webauthn.is_none() {
            tracing::warn!(
                issuer = %state.settings.issuer(),
                "passkeys are off: WebAuthn needs a domain name (use an issuer such as http://localhost:8080, or set webauthn_rp_id)"
            );
        }
        let https = state.settings.is_https();
        let documents = web::Data::new(crate::web::documents::Documents::new(&state));
        let request_timeout = std::time::Duration::from_millis(state.settings.client_request_timeout_ms);
        let keep_alive = std::time::Duration::from_secs(state.settings.keep_alive_secs);
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(documents.clone())
                // Bodies are bounded where they are read (every handler takes
                // raw bytes or a StrictForm): nothing larger is buffered.
                .app_data(web::PayloadConfig::new(64 * 1024))
                .app_data(query_config())
                .configure(crate::web::routes::protocol)
                .configure(crate::web::routes::pages)
                .configure(crate::web::admin_api::configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(crate::web::ui::context))
                .wrap(from_fn(crate::web::limits::bounded_requests))
                .wrap(from_fn(crate::web::metrics::record))
                .wrap(from_fn(crate::web::headers::request_id_header))
                .wrap(tracing_actix_web::TracingLogger::<crate::web::request_span::RequestSpan>::new())
                .wrap(from_fn(crate::web::documents::serve))
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

/// A browser (it asks for HTML) gets a page; an API client, JSON.
async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if crate::web::pages::wants_html(&req) {
        return crate::web::pages::error_page(
            actix_web::http::StatusCode::NOT_FOUND,
            "Page not found",
            "There is no page at this address.",
        );
    }
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

impl AppState {
    /// The state of `serve` and of every CLI command: [`AppState::open`], the
    /// master key checked against a sealed secret (a wrong key is refused
    /// before anything is written with it), and signing keys made at the
    /// first use of a database — from then on a sealed secret exists to check
    /// every later master key against.
    pub async fn build(settings: Settings, clock: Clock) -> Result<(Self, KeySource), StartError> {
        let (state, source) = Self::open(settings, clock).await?;
        check_master_key(&state.db, &state.master_key).await?;
        crate::tokens::keys::ensure_active(&state).await.map_err(|e| StartError::Keys(e.to_string()))?;
        Ok((state, source))
    }

    /// Makes sure signing keys exist, rotates them when due, loads them, and
    /// keeps reloading them in the background (every `key_refresh_secs`).
    pub async fn prepare_keys(&self) -> Result<(), StartError> {
        crate::tokens::keys::ensure_active(self).await.map_err(|e| StartError::Keys(e.to_string()))?;
        crate::tokens::keys::rotate_if_due(self).await.map_err(|e| StartError::Keys(e.to_string()))?;
        self.reload_keys().await.map_err(|e| StartError::Keys(e.to_string()))?;
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(state.settings.key_refresh_secs));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = crate::tokens::keys::rotate_if_due(&state).await {
                    tracing::warn!(error = %e, "automatic key rotation failed");
                }
                if let Err(e) = state.reload_keys().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        });
        Ok(())
    }
}

/// Opens one sealed secret of the database (a signing key, else a TOTP
/// seed) with `key`: a key that cannot is not this database's.
pub async fn check_master_key(db: &DatabaseConnection, key: &MasterKey) -> Result<(), StartError> {
    use crate::storage::entities::{signing_key, totp_credential};
    use sea_orm::EntityTrait;
    let opened = if let Some(k) = signing_key::Entity::find().one(db).await? {
        key.open(&crate::state::keyring::seal_context(&k.kid), &k.private_key).is_ok()
    } else if let Some(t) = totp_credential::Entity::find().one(db).await? {
        crate::authn::mfa::seed_opens(key, &t)
    } else {
        true
    };
    if opened { Ok(()) } else { Err(crate::crypto::MasterKeyError::Mismatch.into()) }
}
