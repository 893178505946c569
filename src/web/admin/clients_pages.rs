//! The client pages and the access-policy form.

use super::*;

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    title: &'static str,
    csrf: String,
    me: String,
    clients: Vec<clients::ClientView>,
}

pub async fn clients_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_with(&state, &req, Permission::ClientsRead, "read clients"));
    let list = clients::list(&state, &a.actor(&state, &req)).await.map_err(admin_error)?;
    a.page(
        StatusCode::OK,
        &ClientsPage { title: "Clients", csrf: a.csrf.clone(), me: a.cur.user.username.clone(), clients: list },
    )
}

#[derive(Template)]
#[template(path = "admin/client.html")]
struct ClientPage {
    title: &'static str,
    csrf: String,
    me: String,
    c: clients::ClientView,
    policy: String,
    can_write: bool,
    notice: Option<String>,
    error: Option<String>,
}

async fn render_client(
    state: &AppState,
    a: &Admin,
    client_id: &str,
    status: StatusCode,
    typed: Option<String>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<HttpResponse, WebError> {
    if !a.can(Permission::ClientsRead) {
        return Ok(forbidden("read clients"));
    }
    let c = match clients::show(state, &a.reader(), client_id).await {
        Ok(c) => c,
        Err(AdminError::NotFound { .. }) => {
            return Ok(error_page(StatusCode::NOT_FOUND, "No such client", "There is no client with that id."));
        }
        Err(e) => return Err(admin_error(e)),
    };
    let policy = typed.unwrap_or_else(|| {
        c.access_policy.as_ref().and_then(|p| serde_json::to_string_pretty(p).ok()).unwrap_or_default()
    });
    let p = ClientPage {
        title: "Client",
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        c,
        policy,
        can_write: a.can(Permission::ClientsWrite),
        notice,
        error,
    };
    a.page(status, &p)
}

pub async fn client_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    let notice = (q.m.as_deref() == Some("policy")).then(|| "The access policy was saved.".to_owned());
    render_client(&state, &a, &path, StatusCode::OK, None, None, notice).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    /// The policy as JSON; empty removes it.
    policy: String,
}

pub async fn client_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: StrictForm<PolicyForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    let client_id = path.into_inner();
    let typed = form.policy.trim().to_owned();
    let parsed = if typed.is_empty() { Ok(None) } else { AccessPolicy::parse_json(&typed).map(Some) };
    let policy = match parsed {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("{}: {}", e.field, e.reason);
            return render_client(&state, &a, &client_id, StatusCode::BAD_REQUEST, Some(typed), Some(msg), None).await;
        }
    };
    let patch = clients::ClientPatch { access_policy: Some(policy), ..Default::default() };
    match clients::update(&state, &a.actor(&state, &req), &client_id, patch).await {
        Ok(_) => Ok(see_other(&format!("/admin/clients/{}?m=policy", urlencode(&client_id)))),
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(AdminError::NotFound { .. }) => {
            Ok(error_page(StatusCode::NOT_FOUND, "No such client", "There is no client with that id."))
        }
        Err(e @ (AdminError::Invalid(_) | AdminError::Refused(_))) => {
            render_client(&state, &a, &client_id, StatusCode::BAD_REQUEST, Some(typed), Some(e.to_string()), None).await
        }
        Err(e) => Err(admin_error(e)),
    }
}
