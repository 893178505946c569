//! Protected resource metadata (RFC 9728) for a service that trusts
//! Portcullis: `GET /.well-known/oauth-protected-resource` names the
//! resource (the audience its tokens carry) and the authorization server,
//! and every 401 of the extractor points there (`resource_metadata` in
//! `WWW-Authenticate`, §5.1). A client that knows only the service's URL —
//! an MCP client, say — finds its way to Portcullis from the first refusal.
//!
//! ```ignore
//! config.resource_metadata = Some(ResourceMetadata { scopes_supported: vec!["mcp".into()], ..Default::default() });
//! App::new().app_data(web::Data::new(verifier)).configure(portcullis_verify::metadata_routes)
//! ```

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::Verifier;

/// The path of the metadata document (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the service says about itself beyond the resource and the issuer.
#[derive(Debug, Clone, Default)]
pub struct ResourceMetadata {
    /// Scopes the service understands (`scopes_supported`).
    pub scopes_supported: Vec<String>,
    /// A name for people (`resource_name`).
    pub resource_name: Option<String>,
}

/// The service's base URL as clients address it: the configured public URL,
/// else this request's `Host` and this server's own scheme (see the DPoP
/// notes on why forwarded headers are not trusted).
pub(crate) fn base_url(req: &HttpRequest, verifier: Option<&Verifier>) -> String {
    match verifier.and_then(Verifier::public_url) {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let scheme = if req.app_config().secure() { "https" } else { "http" };
            let host = req.headers().get(actix_web::http::header::HOST).and_then(|h| h.to_str().ok());
            format!("{scheme}://{}", host.unwrap_or_else(|| req.app_config().host()))
        }
    }
}

/// The metadata URL a 401 points to, when the service publishes metadata.
pub(crate) fn url_for(req: &HttpRequest, verifier: Option<&Verifier>) -> Option<String> {
    verifier
        .filter(|v| v.0.config.resource_metadata.is_some())
        .map(|v| format!("{}{WELL_KNOWN}", base_url(req, Some(v))))
}

/// RFC 9728 §3.2: the metadata document (404 when the service does not
/// publish one).
pub async fn protected_resource_metadata(verifier: Option<web::Data<Verifier>>) -> HttpResponse {
    let Some(v) = verifier else { return HttpResponse::NotFound().finish() };
    let Some(meta) = &v.0.config.resource_metadata else { return HttpResponse::NotFound().finish() };
    let mut doc = json!({
        "resource": v.0.config.audience,
        "authorization_servers": [v.0.config.issuer],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": crate::dpop::ALGS,
    });
    if !meta.scopes_supported.is_empty() {
        doc["scopes_supported"] = meta.scopes_supported.clone().into();
    }
    if let Some(n) = &meta.resource_name {
        doc["resource_name"] = n.clone().into();
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(doc)
}

/// Mounts the metadata document at `/.well-known/oauth-protected-resource`
/// and, for a resource with a path (`https://api.example.com/mcp`), also at
/// `/.well-known/oauth-protected-resource/mcp` (RFC 9728 §3.1).
pub fn metadata_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(WELL_KNOWN, web::get().to(protected_resource_metadata))
        .route(&format!("{WELL_KNOWN}/{{tail:.*}}"), web::get().to(protected_resource_metadata));
}
