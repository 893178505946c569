//! The fixed documents — discovery (also as RFC 8414 metadata) and the JWKS —
//! answered from memory before the rest of the middleware stack.
//!
//! They are the most requested URLs of an identity provider (every relying
//! party and every library fetches them) and the same bytes for everyone, so
//! the per-request work of the other routes (the tracing span, the in-flight
//! limit, the language choice, the router's scan) is only overhead for them:
//! measured, it held us to about half of what nginx does serving the same
//! bytes (docs/PERFORMANCE.md). [`serve`] sits inside the security headers
//! (so these answers carry them like every other) and answers a `GET` of
//! exactly these paths with [`answer`]; every other request goes on down the
//! stack. The route table keeps their entries (`web::routes::protocol`), whose
//! handlers call the same [`answer`] — one place builds the response — and
//! give other methods their 405.
//!
//! What they still get: a request id (`X-Request-Id`, made here without the
//! process-wide lock and system call of the general one, and in the access
//! log line), the access log line, `portcullis_http_requests` by route and
//! the statement count. Not the per-address in-flight limit (an answer from
//! memory holds nothing while in flight; a body sent with the GET is not
//! read). Not the latency histogram:
//! these answers take microseconds and would only flatten it.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{CacheControl, CacheDirective, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use prometheus_client::metrics::counter::Counter;

use crate::state::AppState;

/// The documents, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    Discovery,
    AuthorizationServer,
    Jwks,
}

impl Document {
    pub const ALL: [Document; 3] = [Document::Discovery, Document::AuthorizationServer, Document::Jwks];

    pub fn path(self) -> &'static str {
        match self {
            Document::Discovery => "/.well-known/openid-configuration",
            Document::AuthorizationServer => "/.well-known/oauth-authorization-server",
            Document::Jwks => "/jwks",
        }
    }

    fn at(path: &str) -> Option<Document> {
        Document::ALL.into_iter().find(|d| d.path() == path)
    }
}

/// What the documents are served from (app data, one per server): the
/// discovery document serialised once, and each document's request counter
/// resolved once.
pub struct Documents {
    discovery: web::Bytes,
    served: [Counter; 3],
}

impl Documents {
    pub fn new(state: &AppState) -> Self {
        let discovery = web::Bytes::from(crate::oidc::discovery_document(&state.settings, state.webauthn.is_some()));
        let served = Document::ALL.map(|d| state.metrics.request_counter("GET", d.path(), 200));
        Self { discovery, served }
    }
}

/// The response for a document: discovery and RFC 8414 metadata are the
/// same bytes (serialised once at start), the JWKS is the key ring's (made
/// at each key reload).
pub fn answer(doc: Document, state: &AppState, docs: &Documents) -> HttpResponse {
    match doc {
        Document::Discovery | Document::AuthorizationServer => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)]))
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .body(docs.discovery.clone()),
        Document::Jwks => HttpResponse::Ok()
            .content_type("application/jwk-set+json")
            // Short: relying parties must see a rotation soon.
            .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(300)]))
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .body(state.keyring().jwks()),
    }
}

/// The route table's handlers: reached by a path [`serve`] does not take
/// literally but the router matches after decoding it (`/%6Awks`).
pub async fn discovery(state: web::Data<AppState>, docs: web::Data<Documents>) -> HttpResponse {
    answer(Document::Discovery, &state, &docs)
}

pub async fn jwks(state: web::Data<AppState>, docs: web::Data<Documents>) -> HttpResponse {
    answer(Document::Jwks, &state, &docs)
}

/// Answers a `GET` of a document here; passes everything else on.
pub async fn serve(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let doc = if req.method() == Method::GET { Document::at(req.path()) } else { None };
    let (Some(doc), Some(state), Some(docs)) =
        (doc, req.app_data::<web::Data<AppState>>(), req.app_data::<web::Data<Documents>>())
    else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let started = Instant::now();
    // Counted like every request (none is the budget: tests/api/budget.rs).
    let (mut res, statements) = crate::storage::statements::counted(async { answer(doc, state, docs) }).await;
    let id = request_id();
    docs.served[doc as usize].inc();
    state.metrics.statements(doc.path(), statements);
    tracing::info!(
        target: "access",
        method = "GET",
        route = doc.path(),
        status = 200u16,
        request_id = id.to_str().unwrap_or_default(),
        db_statements = statements,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    res.headers_mut().insert(HeaderName::from_static("x-request-id"), id);
    Ok(req.into_response(res).map_into_right_body())
}

thread_local! {
    /// xorshift64* state of this worker thread, seeded from the OS once.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // The OS generator cannot fail on the platforms we build for; a fixed
    // seed would only make ids of different threads collide more easily.
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b) | 1
}

fn next_random() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A UUIDv7 request id (time-ordered like the general ones). Not a secret:
/// unique enough to find one request's log lines, and cheap.
fn request_id() -> HeaderValue {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut rand = [0u8; 10];
    rand[..8].copy_from_slice(&next_random().to_le_bytes());
    rand[8..].copy_from_slice(&next_random().to_le_bytes()[..2]);
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v7_and_differ() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        let id = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
    }

    #[test]
    fn only_the_exact_paths_are_documents() {
        assert_eq!(Document::at("/jwks"), Some(Document::Jwks));
        assert_eq!(Document::at("/jwks/"), None);
        assert_eq!(Document::at("/.well-known/openid-configuration"), Some(Document::Discovery));
        assert_eq!(Document::at("/.well-known/oauth-authorization-server"), Some(Document::AuthorizationServer));
        assert_eq!(Document::at("/token"), None);
    }
}
