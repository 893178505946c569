//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! a client whose `client_id` is an https URL is not registered here; its
//! metadata is that URL's JSON document, fetched when first needed. It is
//! always a public client that must ask the user's consent every time, gets
//! the scopes of `registration_scopes` and the resources of
//! `registration_resources`, and its redirect URIs are those of the
//! document, checked by `client add`'s rules. Off unless
//! `client_id_documents = true`.
//!
//! The fetch is the dangerous part — the server makes a request to a URL an
//! anonymous caller chose — so: https only, no credentials, no query or
//! fragment; only public addresses (the resolver drops loopback, private,
//! link-local, CGNAT, multicast, unspecified and documentation addresses;
//! IP literals the same) unless `client_id_documents_allow_private` (tests);
//! no redirects; 5 s; at most 5 KiB; at most [`FETCHES_PER_MINUTE`] fetches a
//! minute per instance; answers cached as `Cache-Control` says (60 s to a
//! day; failures 60 s). The document must name itself: its `client_id` is
//! exactly the URL.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{ClientKind, RedirectUri, SigningAlg};
use crate::state::AppState;
use crate::storage::clients::Client;

/// Largest document accepted (the draft's suggestion).
const MAX_BYTES: usize = 5 * 1024;
/// Outgoing fetches one instance makes per minute, at most.
pub const FETCHES_PER_MINUTE: u64 = 60;

/// Whether `client_id` is a document URL (it could never be a registered
/// client id: those have no `:` or `/`).
pub fn is_document_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Why a document cannot be used (logged; the user sees a page, the client
/// `invalid_client`).
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("client id metadata documents are off")]
    Off,
    #[error("the client_id URL is not acceptable: {0}")]
    Url(&'static str),
    #[error("fetching the document failed: {0}")]
    Fetch(String),
    #[error("the document is not acceptable: {0}")]
    Document(String),
    #[error("too many document fetches; try again in a minute")]
    Busy,
}

fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        }
    }
}

/// A resolver that answers only public addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| public(a.ip())).collect();
            if found.is_empty() {
                return Err("the host has no public address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The document as fetched; fields we do not use are ignored.
#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_secret: Option<serde_json::Value>,
}

/// Fetches and checks the document of `url`.
async fn fetch(state: &AppState, url: &str) -> Result<(Client, Duration), DocumentError> {
    let allow_private = state.settings.client_id_documents_allow_private;
    let parsed = url::Url::parse(url).map_err(|_| DocumentError::Url("not a URL"))?;
    if parsed.scheme() != "https" && !(allow_private && parsed.scheme() == "http") {
        return Err(DocumentError::Url("https only"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        return Err(DocumentError::Url("no credentials or fragment"));
    }
    if parsed.path() == "/" || parsed.path().is_empty() {
        return Err(DocumentError::Url("the URL needs a path"));
    }
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) if !allow_private && !public(IpAddr::V4(ip)) => {
            return Err(DocumentError::Url("not a public address"));
        }
        Some(url::Host::Ipv6(ip)) if !allow_private && !public(IpAddr::V6(ip)) => {
            return Err(DocumentError::Url("not a public address"));
        }
        None => return Err(DocumentError::Url("no host")),
        _ => {}
    }
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Portcullis client-id-metadata-document fetcher");
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let http = builder.build().map_err(|e| DocumentError::Fetch(e.to_string()))?;
    let mut resp = http
        .get(parsed.clone())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| DocumentError::Fetch(e.to_string()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(DocumentError::Fetch(format!("status {}", resp.status())));
    }
    let ttl = cache_ttl(resp.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()));
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| DocumentError::Fetch(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BYTES {
            return Err(DocumentError::Document(format!("larger than {MAX_BYTES} bytes")));
        }
    }
    let doc: Document = serde_json::from_slice(&body).map_err(|e| DocumentError::Document(e.to_string()))?;
    if doc.client_id != url {
        return Err(DocumentError::Document("its client_id is not its URL".into()));
    }
    if doc.client_secret.is_some() {
        return Err(DocumentError::Document("a document cannot carry a client_secret".into()));
    }
    match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => return Err(DocumentError::Document(format!("token_endpoint_auth_method {other:?}: only none"))),
    }
    if doc.redirect_uris.is_empty() || doc.redirect_uris.len() > 10 {
        return Err(DocumentError::Document("1 to 10 redirect_uris".into()));
    }
    let redirect_uris = doc
        .redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u, ClientKind::Public).map(String::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DocumentError::Document(format!("redirect_uris: {}", e.reason)))?;
    let mut grant_types = vec!["authorization_code".to_owned()];
    if doc.grant_types.as_deref().is_some_and(|g| g.iter().any(|g| g == "refresh_token")) {
        grant_types.push("refresh_token".to_owned());
    }
    let scopes = doc
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| state.settings.registration_scopes.iter().any(|a| a == s) && *s != "openid")
        .map(str::to_owned)
        .collect();
    let now = state.clock.now();
    let client = Client {
        client_id: url.to_owned(),
        name: doc.client_name.map(|n| n.chars().filter(|c| !c.is_control()).take(128).collect()),
        public: true,
        secret_hash: None,
        redirect_uris,
        post_logout_redirect_uris: Vec::new(),
        grant_types,
        scopes,
        first_party: false,
        pkce_required: true,
        id_token_alg: SigningAlg::RS256,
        require_mfa: false,
        backchannel_logout_uri: None,
        jwks: None,
        access_policy: None,
        resources: state.stranger_resources(),
        refresh_grace_secs: None,
        roles: Vec::new(),
        created_at: now,
        updated_at: now,
        managed_by: None,
        profile: None,
        dpop_bound: false,
        require_par: false,
        registered_ms: Some(now.timestamp_millis()),
        registration_token_hash: None,
    };
    Ok((client, ttl))
}

/// The time a document may be reused: `max-age` within 60 s … 1 day,
/// 5 minutes without one; `no-store`/`no-cache`: 60 s, the least (a flow
/// must not fetch at every step).
fn cache_ttl(header: Option<&str>) -> Duration {
    let Some(h) = header else { return Duration::from_secs(300) };
    let directives: Vec<String> = h.split(',').map(|d| d.trim().to_ascii_lowercase()).collect();
    if directives.iter().any(|d| d == "no-store" || d == "no-cache") {
        return Duration::from_secs(60);
    }
    let max_age = directives.iter().find_map(|d| d.strip_prefix("max-age=").and_then(|v| v.parse::<u64>().ok()));
    Duration::from_secs(max_age.unwrap_or(300).clamp(60, 86_400))
}

/// Fetches made in the current minute (`minute << 32 | count`).
static FETCHES: AtomicU64 = AtomicU64::new(0);

fn admit_fetch(now_secs: i64) -> bool {
    let minute = (now_secs / 60) as u64;
    loop {
        let cur = FETCHES.load(Ordering::Relaxed);
        let (m, n) = (cur >> 32, cur & 0xffff_ffff);
        let next = if m == minute & 0xffff_ffff { n + 1 } else { 1 };
        if next > FETCHES_PER_MINUTE {
            return false;
        }
        let new = ((minute & 0xffff_ffff) << 32) | next;
        if FETCHES.compare_exchange(cur, new, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return true;
        }
    }
}

/// The client a document URL describes: from the cache while fresh, else
/// fetched (failures are remembered for 60 s too).
pub async fn resolve(state: &AppState, url: &str) -> Result<Arc<Client>, DocumentError> {
    if !state.settings.client_id_documents {
        return Err(DocumentError::Off);
    }
    if url.len() > 512 {
        return Err(DocumentError::Url("longer than 512 characters"));
    }
    match state.clients.document(url) {
        Some(Ok(c)) => return Ok(c),
        Some(Err(why)) => return Err(DocumentError::Document(why)),
        None => {}
    }
    if !admit_fetch(state.clock.now().timestamp()) {
        return Err(DocumentError::Busy);
    }
    match fetch(state, url).await {
        Ok((c, ttl)) => {
            let c = Arc::new(c);
            state.clients.put_document(url, Ok(c.clone()), ttl);
            Ok(c)
        }
        Err(e) => {
            tracing::info!(client_id = %url, error = %e, "client id metadata document refused");
            state.clients.put_document(url, Err(e.to_string()), Duration::from_secs(60));
            Err(e)
        }
    }
}
