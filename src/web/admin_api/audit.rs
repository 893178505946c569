//! The audit log, newest first, filtered by user, event type and time.

use super::*;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A user id (the `sub`).
    user: Option<String>,
    /// An event type, e.g. `login.failed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    since: Option<String>,
    /// Only events before this instant (RFC 3339).
    until: Option<String>,
    /// A client id.
    client: Option<String>,
    /// `success` or `failure`.
    outcome: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

fn instant(field: &'static str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    v.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&chrono::Utc)).map_err(|_| Problem {
            field: Some(field),
            ..Problem::new(StatusCode::BAD_REQUEST, "Invalid field", format!("{field} must be an RFC 3339 date-time"))
        })
    })
    .transpose()
}

#[utoipa::path(tag = "audit", description = "Needs `audit:read`.", params(AuditQuery), responses((status = 200, body = AuditPage), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/audit")]
pub async fn list_audit(
    a: Caller<AuditRead>,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, Problem> {
    let (page, per) = bounds(&Paging { search: None, page: q.page, per_page: q.per_page })?;
    if let Some(o) = q.outcome.as_deref().filter(|o| !matches!(*o, "success" | "failure")) {
        return Err(Problem {
            field: Some("outcome"),
            ..Problem::new(
                StatusCode::BAD_REQUEST,
                "Invalid field",
                format!("outcome {o:?} is not one of success, failure"),
            )
        });
    }
    let filter = crate::storage::audit::Filter {
        user_id: q.user.clone(),
        client_id: q.client.clone(),
        event_type: q.event_type.clone(),
        outcome: q.outcome.clone(),
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
    };
    let items: Vec<AuditItem> = crate::admin::audit_events(&a, &filter)?
        .paginate(&state.db, per)
        .fetch_page(page)
        .await?
        .into_iter()
        .map(AuditItem::from)
        .collect();
    Ok(HttpResponse::Ok().json(AuditPage { items, page, per_page: per }))
}

/// One audit event.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "type")]
    event_type: String,
    outcome: String,
    actor: Option<String>,
    user_id: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    /// Event-specific detail; for changes, `{"changes": {field: {"from": …, "to": …}}}`.
    #[schema(value_type = Object)]
    detail: Value,
}

impl From<audit_event::Model> for AuditItem {
    fn from(e: audit_event::Model) -> Self {
        Self {
            detail: serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
            id: e.id,
            at: e.at,
            event_type: e.event_type,
            outcome: e.outcome,
            actor: e.actor,
            user_id: e.user_id,
            client_id: e.client_id,
            ip: e.ip,
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    items: Vec<AuditItem>,
    page: u64,
    per_page: u64,
}
