//! The audit page: columns with names (links to the user and client pages),
//! details as fields, filters by user, client, event type (from the list of
//! recorded types), outcome and time, and the same selection as JSON lines.

use std::collections::HashMap;

use futures_util::StreamExt;

use super::*;
use crate::storage::audit::Filter;

/// Someone or something in an event: a name and, where there is a page, a link.
pub(super) struct Party {
    pub(super) label: String,
    pub(super) href: Option<String>,
}

pub(super) struct EventRow {
    pub(super) at: String,
    pub(super) event_type: String,
    pub(super) outcome: String,
    pub(super) actor: Party,
    pub(super) user: Option<Party>,
    pub(super) client: Option<Party>,
    pub(super) ip: String,
    pub(super) detail: Vec<(String, String)>,
}

/// A detail value as text: strings bare, a change as `from → to`, the rest as JSON.
fn value_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Object(m) if m.len() == 2 && m.contains_key("from") && m.contains_key("to") => {
            format!("{} → {}", value_text(&m["from"]), value_text(&m["to"]))
        }
        other => other.to_string(),
    }
    .chars()
    .take(300)
    .collect()
}

fn detail_fields(detail: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(serde_json::Value::Object(m)) => m
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v) {
                // `{"changes": {field: {from, to}}}`: one line per field.
                ("changes", serde_json::Value::Object(c)) => {
                    c.iter().map(|(f, ch)| (f.clone(), value_text(ch))).collect::<Vec<_>>()
                }
                _ => vec![(k.clone(), value_text(v))],
            })
            .collect(),
        _ if detail.trim().is_empty() => Vec::new(),
        _ => vec![("detail".into(), detail.chars().take(300).collect())],
    }
}

fn user_party(id: &str, names: &HashMap<String, String>) -> Party {
    match names.get(id) {
        Some(name) => Party { label: name.clone(), href: Some(format!("/admin/users/{}", urlencode(name))) },
        // Erased or never known: the id (or pseudonym) as recorded.
        None => Party { label: id.to_owned(), href: None },
    }
}

fn client_party(id: &str) -> Party {
    Party { label: id.to_owned(), href: Some(format!("/admin/clients/{}", urlencode(id))) }
}

/// Rows for `events`, with the usernames of the users they name (one query).
pub(super) async fn event_rows(state: &AppState, events: Vec<audit_event::Model>) -> Result<Vec<EventRow>, WebError> {
    let mut ids: Vec<String> = Vec::new();
    for e in &events {
        ids.extend(e.user_id.clone());
        ids.extend(e.actor.as_deref().and_then(|a| a.strip_prefix("user:")).map(str::to_owned));
    }
    ids.sort();
    ids.dedup();
    let names: HashMap<String, String> = if ids.is_empty() {
        HashMap::new()
    } else {
        user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect()
    };
    Ok(events
        .into_iter()
        .map(|e| {
            let actor = match e.actor.as_deref() {
                Some(a) if a.starts_with("user:") => user_party(&a[5..], &names),
                Some(a) if a.starts_with("client:") => client_party(&a[7..]),
                Some(a) => Party { label: a.to_owned(), href: None },
                None => Party { label: "—".into(), href: None },
            };
            EventRow {
                at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                actor,
                user: e.user_id.as_deref().map(|u| user_party(u, &names)),
                client: e.client_id.as_deref().map(client_party),
                ip: e.ip.unwrap_or_default(),
                detail: detail_fields(&e.detail),
                event_type: e.event_type,
                outcome: e.outcome,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    title: &'static str,
    csrf: String,
    me: String,
    q: AuditForm,
    types: Vec<String>,
    events: Vec<EventRow>,
    page: u64,
    more: bool,
    /// The filter as a query string (for paging and the export link).
    query: String,
    error: Option<String>,
}

/// The filter form, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct AuditForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    outcome: String,
    /// `YYYY-MM-DDTHH:MM` (UTC), as a datetime-local input sends it.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<u64>,
}

impl AuditForm {
    fn clean(mut self) -> Self {
        let cut = |s: &str, n: usize| s.trim().chars().take(n).collect::<String>();
        self.user = cut(&self.user, 128);
        self.client = cut(&self.client, 128);
        self.kind = cut(&self.kind, 64);
        self.outcome = cut(&self.outcome, 16);
        self.from = cut(&self.from, 32);
        self.to = cut(&self.to, 32);
        self
    }

    fn query(&self) -> String {
        [
            ("user", &self.user),
            ("client", &self.client),
            ("type", &self.kind),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The storage filter, or what is wrong with the form.
    async fn filter(&self, state: &AppState) -> Result<Result<Filter, String>, WebError> {
        let instant = |label: &str, v: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| Some(t.and_utc()))
                .map_err(|_| format!("{label}: a date and time like 2026-12-01T09:30 (UTC)"))
        };
        let since = match instant("From", &self.from) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let until = match instant("To", &self.to) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let outcome = match self.outcome.as_str() {
            "" => None,
            o @ ("success" | "failure") => Some(o.to_owned()),
            _ => return Ok(Err(crate::web::ui::t("admin_msg.bad_outcome").into())),
        };
        // A username or a user id.
        let user_id = if self.user.is_empty() {
            None
        } else {
            let found = user::Entity::find()
                .filter(user::Column::UsernameKey.eq(self.user.to_lowercase()))
                .one(&state.db)
                .await?;
            Some(found.map(|u| u.id).unwrap_or_else(|| self.user.clone()))
        };
        let opt = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        Ok(Ok(Filter { user_id, client_id: opt(&self.client), event_type: opt(&self.kind), outcome, since, until }))
    }
}

pub async fn audit_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::AuditRead, "read the audit log"));
    let form = q.into_inner().clean();
    let page = form.page.unwrap_or(0).min(100_000);
    let (events, more, error) = match form.filter(&state).await? {
        Ok(filter) => {
            // One row more than a page tells whether there is a next page.
            let found = crate::admin::audit_events(&a.reader(), &filter).map_err(admin_error)?;
            let events = found.offset(page * PER_PAGE).limit(PER_PAGE + 1).all(&state.db).await?;
            let more = events.len() as u64 > PER_PAGE;
            let rows = event_rows(&state, events.into_iter().take(PER_PAGE as usize).collect()).await?;
            (rows, more, None)
        }
        Err(e) => (Vec::new(), false, Some(e)),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let p = AuditPage {
        title: crate::web::ui::t("admin.audit_log"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        types: crate::storage::audit::event_types(&state.db).await?,
        query: form.query(),
        q: form,
        events,
        page,
        more,
        error,
    };
    a.page(status, &p)
}

/// Rows read per database round trip of the export.
const EXPORT_CHUNK: u64 = 500;

/// The filtered events as JSON lines (`application/x-ndjson`), newest first,
/// streamed in chunks (keyset on the id, so nothing is skipped or repeated
/// while events are being added). The export itself is audited.
pub async fn audit_export(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::AuditRead, "read the audit log"));
    let form = q.into_inner().clean();
    let filter = match form.filter(&state).await? {
        Ok(f) => f,
        Err(e) => return Ok(error_page(StatusCode::BAD_REQUEST, crate::web::ui::t("admin_msg.bad_filter"), &e)),
    };
    crate::storage::record_audit(
        &state.db,
        crate::storage::AuditEvent::new("audit.exported", "success")
            .actor(format!("user:{}", a.cur.user.id))
            .source(client_info::ip(&state, &req), client_info::user_agent(&req))
            // The filter as resolved (a user as their id, which erasure
            // pseudonymises), not as typed.
            .detail(serde_json::json!({ "filter": {
                "user_id": filter.user_id,
                "client_id": filter.client_id,
                "type": filter.event_type,
                "outcome": filter.outcome,
                "since": filter.since,
                "until": filter.until,
            } })),
        state.clock.now(),
    )
    .await?;
    let found = crate::admin::audit_events(&a.reader(), &filter).map_err(admin_error)?;
    let db = state.db.clone();
    let rows = futures_util::stream::unfold(Some(i64::MAX), move |before| {
        let db = db.clone();
        let found = found.clone();
        async move {
            let before = before?;
            let chunk = found.filter(audit_event::Column::Id.lt(before)).limit(EXPORT_CHUNK).all(&db).await;
            match chunk {
                Ok(events) if events.is_empty() => None,
                Ok(events) => {
                    let next = events.last().map(|e| e.id).filter(|_| events.len() as u64 == EXPORT_CHUNK);
                    let mut text = String::new();
                    for e in events {
                        // The admin API's item, one per line.
                        let item = crate::web::admin_api::AuditItem::from(e);
                        text.push_str(&serde_json::to_string(&item).unwrap_or_default());
                        text.push('\n');
                    }
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(text)), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed part-way");
                    Some((Err(actix_web::error::ErrorInternalServerError("export failed")), None))
                }
            }
        }
    })
    .boxed_local();
    let name = format!("portcullis-audit-{}.jsonl", state.clock.now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(rows))
}
