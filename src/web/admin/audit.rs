//! The audit page.

use super::*;

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    title: &'static str,
    csrf: String,
    me: String,
    user: String,
    kind: String,
    events: Vec<EventRow>,
    page: u64,
    more: bool,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<u64>,
}

pub async fn audit_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::AuditRead, "read the audit log"));
    let user_filter: String = q.user.as_deref().unwrap_or_default().trim().chars().take(128).collect();
    let kind: String = q.kind.as_deref().unwrap_or_default().trim().chars().take(64).collect();
    let mut find = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
    if !user_filter.is_empty() {
        // A username or a user id.
        let id = match user::Entity::find()
            .filter(user::Column::UsernameKey.eq(user_filter.to_lowercase()))
            .one(&state.db)
            .await?
        {
            Some(u) => u.id,
            None => user_filter.clone(),
        };
        find = find.filter(audit_event::Column::UserId.eq(id));
    }
    if !kind.is_empty() {
        find = find.filter(audit_event::Column::EventType.eq(kind.as_str()));
    }
    let page = q.page.unwrap_or(0).min(100_000);
    // One row more than a page tells whether there is a next page.
    let events = find.offset(page * PER_PAGE).limit(PER_PAGE + 1).all(&state.db).await?;
    let more = events.len() as u64 > PER_PAGE;
    let p = AuditPage {
        title: "Audit log",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        user: user_filter,
        kind,
        events: events.into_iter().take(PER_PAGE as usize).map(event_row).collect(),
        page,
        more,
    };
    a.page(StatusCode::OK, &p)
}
