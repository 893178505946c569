//! What every page shows besides its content: the brand (product name, logo,
//! colours, footer — from configuration) and the language. `context` sets
//! both for each request; templates read them with `brand()` and `t("key")`.
//!
//! The language: `ui_locales` on the request (OIDC Core §3.1.2.1, also
//! honoured on any page; remembered in a cookie for the rest of the login),
//! else that cookie, else `Accept-Language`, else English. Every user-facing
//! string of the end-user pages is in the catalogues `locales/en.toml` and
//! `locales/de.toml`; a test checks that both hold every key the templates
//! and handlers use.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::domain::branding::Branding;
use crate::state::AppState;

/// The languages with a complete catalogue.
pub const LANGUAGES: [&str; 2] = ["en", "de"];
/// The cookie remembering a language chosen by `ui_locales`.
pub const LANG_COOKIE: &str = "portcullis_lang";

#[derive(Clone)]
struct Ui {
    brand: Arc<Branding>,
    lang: &'static str,
}

tokio::task_local! {
    static UI: Ui;
}

static DEFAULT_BRAND: LazyLock<Arc<Branding>> = LazyLock::new(|| Arc::new(Branding::default()));

type Catalogue = HashMap<String, String>;

fn parse(text: &str) -> Catalogue {
    match text.parse::<toml::Table>() {
        Ok(table) => table
            .into_iter()
            .flat_map(|(section, v)| match v {
                toml::Value::Table(t) => t
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (format!("{section}.{k}"), s.to_owned())))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "a message catalogue does not parse");
            HashMap::new()
        }
    }
}

static CATALOGUES: LazyLock<[(&'static str, Catalogue); 2]> = LazyLock::new(|| {
    [("en", parse(include_str!("../../locales/en.toml"))), ("de", parse(include_str!("../../locales/de.toml")))]
});

fn catalogue(lang: &str) -> &'static Catalogue {
    let all = &*CATALOGUES;
    all.iter().find(|(l, _)| *l == lang).map_or(&all[0].1, |(_, c)| c)
}

/// The keys of a language's catalogue (for the completeness test).
pub fn keys(lang: &str) -> Vec<&'static str> {
    catalogue(lang).keys().map(String::as_str).collect()
}

/// The brand of this request (the default outside one).
pub fn brand() -> Arc<Branding> {
    UI.try_with(|u| u.brand.clone()).unwrap_or_else(|_| DEFAULT_BRAND.clone())
}

/// The language of this request.
pub fn lang() -> &'static str {
    UI.try_with(|u| u.lang).unwrap_or("en")
}

/// The message `key` in this request's language (English if the language
/// lacks it, the key itself if English does — the tests forbid both).
pub fn t(key: &'static str) -> &'static str {
    let lang = lang();
    catalogue(lang).get(key).or_else(|| catalogue("en").get(key)).map_or(key, String::as_str)
}

/// `t(key)` with `{name}` replaced by `value`.
pub fn tf(key: &'static str, name: &str, value: impl std::fmt::Display) -> String {
    t(key).replace(&format!("{{{name}}}"), &value.to_string())
}

/// The first supported language of a `ui_locales` value (space-separated
/// BCP 47 tags, in order of preference).
fn from_ui_locales(v: &str) -> Option<&'static str> {
    v.split(' ').filter_map(primary).next()
}

fn primary(tag: &str) -> Option<&'static str> {
    let p = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == p)
}

/// The best supported language of an `Accept-Language` header (by q-value).
fn from_accept_language(v: &str) -> Option<&'static str> {
    let mut best: Option<(&'static str, f32)> = None;
    for part in v.split(',').take(20) {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or_default();
        let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
        if let Some(l) = primary(tag)
            && q > 0.0
            && best.is_none_or(|(_, bq)| q > bq)
        {
            best = Some((l, q));
        }
    }
    best.map(|(l, _)| l)
}

/// Chooses the language of a request; `Some` when `ui_locales` chose it (to be remembered).
fn choose(req: &ServiceRequest) -> (&'static str, Option<&'static str>) {
    // Parsed only when named: most requests (tokens, discovery) have no say.
    let query = req.query_string();
    let asked = query
        .contains("ui_locales")
        .then(|| web::Query::<HashMap<String, String>>::from_query(query).ok())
        .flatten()
        .and_then(|q| q.get("ui_locales").and_then(|v| from_ui_locales(v)));
    if let Some(l) = asked {
        return (l, Some(l));
    }
    if let Some(l) = req.cookie(LANG_COOKIE).and_then(|c| primary(c.value())) {
        return (l, None);
    }
    let accept = req.headers().get("accept-language").and_then(|v| v.to_str().ok()).and_then(from_accept_language);
    (accept.unwrap_or("en"), None)
}

/// Middleware: runs the request with its brand and language.
pub async fn context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let brand = req.app_data::<web::Data<AppState>>().map_or_else(|| DEFAULT_BRAND.clone(), |s| s.branding.clone());
    let (lang, remember) = choose(&req);
    // Only a remembered choice sets a cookie, so only then is the scheme read.
    let secure = remember.is_some() && req.connection_info().scheme() == "https";
    let mut res = UI.scope(Ui { brand, lang }, next.call(req)).await?;
    if let Some(l) = remember {
        let cookie = actix_web::cookie::Cookie::build(LANG_COOKIE, l)
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(actix_web::cookie::SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::days(365))
            .finish();
        let _ = res.response_mut().add_cookie(&cookie);
    }
    Ok(res)
}

/// `GET /branding/logo`: the configured logo (404 without one).
pub async fn logo(state: web::Data<AppState>) -> HttpResponse {
    match &state.branding.logo {
        Some(l) => HttpResponse::Ok()
            .content_type(l.content_type)
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .body(l.bytes.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /branding.css`: the configured accent colours.
pub async fn stylesheet(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(state.branding.stylesheet())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a template or handler uses is in every catalogue, and the
    /// catalogues hold the same keys: a language is complete or not shipped.
    #[test]
    fn catalogues_are_complete() {
        let mut used = std::collections::BTreeSet::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut stack = vec![root.join("templates"), root.join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for marker in ["t(\"", "tf(\""] {
                    for piece in text.split(marker).skip(1) {
                        let key = piece.split('"').next().unwrap_or_default();
                        if key.contains('.') && key.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_') {
                            used.insert(key.to_owned());
                        }
                    }
                }
            }
        }
        assert!(used.len() > 40, "found only {} keys: is the scan broken?", used.len());
        let en: std::collections::BTreeSet<&str> = keys("en").into_iter().collect();
        let de: std::collections::BTreeSet<&str> = keys("de").into_iter().collect();
        let missing: Vec<&String> = used.iter().filter(|k| !en.contains(k.as_str())).collect();
        assert!(missing.is_empty(), "keys used but not in en.toml: {missing:?}");
        assert_eq!(en.symmetric_difference(&de).collect::<Vec<_>>(), Vec::<&&str>::new(), "en and de differ");
        // A placeholder in one language is in the other.
        for k in &en {
            let holes = |lang: &str| {
                let s = catalogue(lang)[*k].as_str();
                let mut h: Vec<&str> = s.split('{').skip(1).filter_map(|p| p.split('}').next()).collect();
                h.sort();
                h
            };
            assert_eq!(holes("en"), holes("de"), "{k}");
        }
    }

    #[test]
    fn the_language_follows_ui_locales_then_accept_language() {
        assert_eq!(from_ui_locales("fr-CA de-DE en"), Some("de"));
        assert_eq!(from_ui_locales("fr"), None);
        assert_eq!(from_accept_language("fr;q=0.9, de;q=0.8, en;q=0.5"), Some("de"));
        assert_eq!(from_accept_language("en-GB,en;q=0.9,de;q=0.95"), Some("en"));
        assert_eq!(from_accept_language("de;q=0"), None);
        assert_eq!(from_accept_language(""), None);
    }
}
