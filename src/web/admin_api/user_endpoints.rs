//! Users: list, read, create, change, disable, credentials, roles, attributes, sessions, erasure.

use super::*;

#[utoipa::path(tag = "users", description = "Needs `users:read`.", params(Paging), responses((status = 200, body = UserPage), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users")]
pub async fn list_users(
    a: Caller<UsersRead>,
    state: web::Data<AppState>,
    q: web::Query<Paging>,
) -> Result<HttpResponse, Problem> {
    let (page, per) = bounds(&q)?;
    let mut find = user::Entity::find().order_by_asc(user::Column::UsernameKey);
    if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
        find = find.filter(crate::storage::contains_literally(user::Column::UsernameKey, &s.to_lowercase()));
    }
    let pages = find.paginate(&state.db, per);
    let total = pages.num_items().await?;
    let mut out = Vec::new();
    for u in pages.fetch_page(page).await? {
        out.push(users::show(&state, &a, &u.username).await?);
    }
    Ok(HttpResponse::Ok().json(UserPage { items: out, page, per_page: per, total }))
}

#[utoipa::path(tag = "users", description = "Needs `users:read`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users/{username}")]
pub async fn get_user(
    a: Caller<UsersRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::show(&state, &a, &path).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    username: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Optional initial password (checked against the password policy).
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<secrecy::SecretString>,
}

#[utoipa::path(tag = "users", description = "Needs `users:write (and roles:write to grant roles)`.", request_body = NewUserBody, responses((status = 201, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "The username is taken", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users")]
pub async fn create_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = caller.may(Permission::UsersWrite).await?;
    let b: NewUserBody = self::body(&body)?;
    if !b.roles.is_empty() {
        // Granting roles hands out permissions: it needs roles:write too.
        caller.may(Permission::RolesWrite).await?;
    }
    let new = users::NewUser::parse(&b.username, b.email.as_deref(), b.name.as_deref(), &b.roles, b.password)?;
    let view = users::create(&state, &a, new).await?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/disable")]
pub async fn disable_user(
    a: Caller<UsersWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::set_disabled(&state, &a, &path, true).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/enable")]
pub async fn enable_user(
    a: Caller<UsersWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::set_disabled(&state, &a, &path, false).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/unlock")]
pub async fn unlock_user(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::unlock(&state, &a, &path).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/reset-mfa")]
pub async fn reset_mfa(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::reset_mfa(&state, &a, &path).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[schema(value_type = String, format = Password)]
    password: secrecy::SecretString,
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`.", params(("username" = String, Path, description = "The username")), request_body = PasswordBody, responses((status = 204, description = "Password set; the user's sessions ended"), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/password")]
pub async fn set_password(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let b: PasswordBody = body(&raw)?;
    users::set_password(&state, &a, &path, &b.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

#[utoipa::path(tag = "users", description = "Needs `roles:write`.", params(("username" = String, Path, description = "The username")), request_body = RoleBody, responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/roles")]
pub async fn grant_role(
    a: Caller<RolesWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let b: RoleBody = body(&raw)?;
    Ok(HttpResponse::Ok().json(users::grant(&state, &a, &path, &b.role).await?))
}

#[utoipa::path(tag = "users", description = "Needs `roles:write`.", params(("username" = String, Path, description = "The username"), ("role" = String, Path, description = "The role")), responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}/roles/{role}")]
pub async fn revoke_role(
    a: Caller<RolesWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (username, role) = path.into_inner();
    Ok(HttpResponse::Ok().json(users::revoke(&state, &a, &username, &role).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    value: String,
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username"), ("key" = String, Path, description = "The attribute key")), request_body = ValueBody, responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[put("/admin/api/v1/users/{username}/attributes/{key}")]
pub async fn set_attribute(
    a: Caller<UsersWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let (username, key) = path.into_inner();
    let b: ValueBody = body(&raw)?;
    Ok(HttpResponse::Ok().json(users::set_attribute(&state, &a, &username, &key, &b.value).await?))
}

#[utoipa::path(tag = "sessions", description = "Needs `sessions:revoke`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = SessionsEnded), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}/sessions")]
pub async fn revoke_sessions(
    a: Caller<SessionsRevoke>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let sessions_ended = users::end_sessions(&state, &a, &path).await?;
    Ok(HttpResponse::Ok().json(SessionsEnded { sessions_ended }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserErased {
    /// The pseudonym the audit trail now uses for the erased user.
    pseudonym: String,
}

#[utoipa::path(tag = "users", description = "Needs `users:write`. Erasure (GDPR art. 17): sessions and refresh tokens end (back-channel logouts), the account and its credentials, roles, attributes and consents are deleted, and the audit trail keeps the user's events under a pseudonym.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = UserErased), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}")]
pub async fn delete_user(
    a: Caller<UsersWriteFresh>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let pseudonym = users::delete(&state, &a, &path).await?;
    Ok(HttpResponse::Ok().json(UserErased { pseudonym }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new e-mail address; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// A new display name; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// A new phone number (OIDC `phone_number`); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    phone_number: Option<Option<String>>,
    /// A new postal address (OIDC `address`); `null` removes it.
    #[serde(default, deserialize_with = "present_address")]
    #[schema(value_type = Option<crate::domain::Address>)]
    address: Option<Option<crate::domain::Address>>,
}

fn present_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<crate::domain::Address>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(Some(None)),
        Some(v) => crate::domain::Address::from_json(v).map(|a| Some(Some(a))).map_err(serde::de::Error::custom),
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[utoipa::path(tag = "users", description = "Needs `users:write`.", params(("username" = String, Path, description = "The username")),
    request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[patch("/admin/api/v1/users/{username}")]
pub async fn update_user(
    a: Caller<UsersWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let b: UserPatch = body(&raw)?;
    let patch = users::ProfilePatch { email: b.email, name: b.name, phone_number: b.phone_number, address: b.address };
    Ok(HttpResponse::Ok().json(users::update_profile(&state, &a, &path, patch).await?))
}

#[utoipa::path(tag = "sessions", description = "Needs `users:read`. The user's live browser sessions, newest first.",
    params(("username" = String, Path, description = "The username")),
    responses((status = 200, body = Vec<SessionView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users/{username}/sessions")]
pub async fn list_sessions(
    a: Caller<UsersRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let u = users::show(&state, &a, &path).await?;
    let rows = crate::session::list_for_user(&state, &state.db, &u.id, state.clock.now()).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(SessionView::from).collect::<Vec<_>>()))
}

#[utoipa::path(tag = "sessions", description = "Needs `sessions:revoke`. Ends every user's sessions and the refresh tokens granted from them; back-channel logouts follow.",
    responses((status = 200, body = SessionsEnded), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/sessions")]
pub async fn revoke_all_sessions(
    a: Caller<SessionsRevoke>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let sessions_ended = users::end_all_sessions(&state, &a).await?;
    Ok(HttpResponse::Ok().json(SessionsEnded { sessions_ended }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserPage {
    items: Vec<users::UserView>,
    page: u64,
    per_page: u64,
    total: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    sessions_ended: u64,
}

/// A live browser session (never its cookie value).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionView {
    id: String,
    created_at: chrono::DateTime<chrono::Utc>,
    auth_time: i64,
    last_seen_ms: i64,
    expires_ms: i64,
    amr: Vec<String>,
    acr: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<crate::session::Session> for SessionView {
    fn from(s: crate::session::Session) -> Self {
        Self {
            amr: s.amr,
            id: s.id,
            created_at: s.created_at,
            auth_time: s.auth_time,
            last_seen_ms: s.last_seen_ms,
            expires_ms: s.expires_ms,
            acr: s.acr,
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

#[utoipa::path(tag = "users", description = "Needs `users:read`.", params(("username" = String, Path, description = "The username")), responses((status = 200, body = Vec<users::PasskeyView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users/{username}/passkeys")]
pub async fn list_passkeys(
    a: Caller<UsersRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::passkeys(&state, &a, &path).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials`. Revokes the passkey and ends the user's sessions (back-channel logout).", params(("username" = String, Path, description = "The username"), ("credential_id" = String, Path, description = "The passkey's credential id")), responses((status = 204, description = "Removed"), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}/passkeys/{credential_id}")]
pub async fn remove_passkey(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (username, credential_id) = path.into_inner();
    users::remove_passkey(&state, &a, &username, &credential_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// Also mail the link to the user's address (needs mail configured).
    #[serde(default)]
    send: bool,
}

async fn issue_link(
    state: &AppState,
    a: &Actor,
    username: &str,
    raw: &[u8],
    purpose: crate::lifecycle::Purpose,
) -> Result<HttpResponse, Problem> {
    let b: LinkBody = if raw.iter().all(u8::is_ascii_whitespace) { LinkBody::default() } else { body(raw)? };
    let issued = crate::lifecycle::recovery::issue(state, a, username, purpose, b.send).await?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(issued))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials` and a recent login. A single-use activation link for an account without a password; shown once (only its hash is stored); an older invitation of the user dies.", params(("username" = String, Path, description = "The username")), request_body(content = Option<LinkBody>, description = "Optional: `{\"send\": true}` also mails the link"), responses((status = 201, body = crate::lifecycle::recovery::IssuedLink), (status = 401, description = "No valid admin token, or the login is not recent", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input, or refused: the account has a password already, mail is not configured", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/invitation")]
pub async fn invite_user(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    issue_link(&state, &a, &path, &raw, crate::lifecycle::Purpose::Invite).await
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials` and a recent login. A single-use password-reset link; shown once; an older reset link of the user dies. The second factor stays.", params(("username" = String, Path, description = "The username")), request_body(content = Option<LinkBody>, description = "Optional: `{\"send\": true}` also mails the link"), responses((status = 201, body = crate::lifecycle::recovery::IssuedLink), (status = 401, description = "No valid admin token, or the login is not recent", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input, or refused: mail is not configured", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/users/{username}/reset-link")]
pub async fn reset_link(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    issue_link(&state, &a, &path, &raw, crate::lifecycle::Purpose::Reset).await
}

#[utoipa::path(tag = "users", description = "Needs `users:read`. The user's linked upstream identities (\"Sign in with …\").", params(("username" = String, Path, description = "The username")), responses((status = 200, body = Vec<users::UpstreamView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/users/{username}/upstream")]
pub async fn list_upstream(
    a: Caller<UsersRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(users::upstream_identities(&state, &a, &path).await?))
}

#[utoipa::path(tag = "users", description = "Needs `users:credentials` and a recent login. Unlinks the user's identity at the provider and ends the user's sessions (back-channel logout).", params(("username" = String, Path, description = "The username"), ("provider" = String, Path, description = "The provider's id")), responses((status = 204, description = "Unlinked"), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/users/{username}/upstream/{provider}")]
pub async fn remove_upstream(
    a: Caller<UsersCredentials>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (username, provider) = path.into_inner();
    users::remove_upstream(&state, &a, &username, &provider).await?;
    Ok(HttpResponse::NoContent().finish())
}
