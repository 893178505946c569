//! The roles page.

use super::*;

#[derive(Template)]
#[template(path = "admin/roles.html")]
struct RolesPage {
    title: &'static str,
    csrf: String,
    me: String,
    roles: Vec<roles::RoleView>,
    can_write: bool,
    error: Option<String>,
}

pub async fn roles_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin(&state, &req));
    roles_render(&state, &a, StatusCode::OK, None).await
}

async fn roles_render(
    state: &AppState,
    a: &Admin,
    status: StatusCode,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    if !a.can(Permission::UsersRead) {
        return Ok(forbidden("read roles"));
    }
    let list = roles::list(state, &a.reader()).await.map_err(admin_error)?;
    let p = RolesPage {
        title: crate::web::ui::t("admin.roles"),
        csrf: a.csrf.clone(),
        me: a.cur.user.username.clone(),
        roles: list,
        can_write: a.can(Permission::RolesWrite),
        error,
    };
    a.page(status, &p)
}

#[derive(Deserialize)]
pub struct RoleForm {
    csrf: String,
    name: String,
    description: Option<String>,
}

pub async fn role_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<RoleForm>,
) -> Result<HttpResponse, WebError> {
    let a = admin_or_return!(admin_for_form(&state, &req, &form.csrf));
    if a.principal.authorize(Permission::RolesWrite).is_err() {
        return Ok(forbidden(Permission::RolesWrite.as_str()));
    }
    let description = form.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    match roles::add(&state, &a.actor(&state, &req), &form.name, description).await {
        Ok(_) => Ok(see_other("/admin/roles")),
        Err(AdminError::Forbidden(p)) => Ok(forbidden(p)),
        Err(e @ (AdminError::Invalid(_) | AdminError::Exists { .. } | AdminError::Refused(_))) => {
            roles_render(&state, &a, StatusCode::BAD_REQUEST, Some(e.to_string())).await
        }
        Err(e) => Err(admin_error(e)),
    }
}
