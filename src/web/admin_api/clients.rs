//! Roles, clients and signing keys.

use super::*;

#[utoipa::path(tag = "roles", description = "Needs `users:read`.", responses((status = 200, body = Vec<RoleView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/roles")]
pub async fn list_roles(a: Caller<UsersRead>, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(crate::admin::roles::list(&state, &a).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoleBody {
    name: String,
    description: Option<String>,
}

#[utoipa::path(tag = "roles", description = "Needs `roles:write`.", request_body = NewRoleBody, responses((status = 201, body = RoleView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "The role exists", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/roles")]
pub async fn create_role(
    a: Caller<RolesWrite>,
    state: web::Data<AppState>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let b: NewRoleBody = body(&raw)?;
    Ok(HttpResponse::Created().json(crate::admin::roles::add(&state, &a, &b.name, b.description.as_deref()).await?))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:read`.", responses((status = 200, body = Vec<ClientView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/clients")]
pub async fn list_clients(a: Caller<ClientsRead>, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(crate::admin::clients::list(&state, &a).await?))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:read`.", params(("client_id" = String, Path, description = "The client id")), responses((status = 200, body = ClientView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/clients/{client_id}")]
pub async fn get_client(
    a: Caller<ClientsRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(crate::admin::clients::show(&state, &a, &path).await?))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write`.", params(("client_id" = String, Path, description = "The client id")), responses((status = 204, description = "Deleted; its refresh and access tokens stop working"), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[delete("/admin/api/v1/clients/{client_id}")]
pub async fn delete_client(
    a: Caller<ClientsWriteFresh>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    crate::admin::clients::remove(&state, &a, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write`.", params(("client_id" = String, Path, description = "The client id")), responses((status = 200, body = ClientSecret), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"), (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/clients/{client_id}/rotate-secret")]
pub async fn rotate_client_secret(
    a: Caller<ClientsWriteFresh>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let created = crate::admin::clients::rotate_secret(&state, &a, &path).await?;
    // Shown once, like the CLI; the response must not be cached.
    Ok(secret_response(StatusCode::OK, created))
}

#[utoipa::path(tag = "keys", description = "Needs `keys:rotate`.", responses((status = 200, body = Vec<KeyView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[get("/admin/api/v1/keys")]
pub async fn list_keys(a: Caller<KeysRotate>, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(crate::admin::keys::list(&state, &a).await?))
}

#[utoipa::path(tag = "keys", description = "Needs `keys:rotate`.", responses((status = 200, body = Vec<KeyView>), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/keys/rotate")]
pub async fn rotate_keys(a: Caller<KeysRotate>, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let keys = crate::admin::keys::rotate(&state, &a).await?;
    Ok(HttpResponse::Ok().json(keys))
}

/// An initial access token for dynamic client registration, shown once.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RegistrationToken {
    /// Single use, valid 7 days: the bearer token of one `POST /register`.
    token: String,
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write`. Creates a single-use initial access token (RFC 7591) for `POST /register` when `client_registration = \"token\"`; shown once.", responses((status = 201, body = RegistrationToken), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/registration-tokens")]
pub async fn create_registration_token(
    a: Caller<ClientsWrite>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let token = crate::admin::clients::registration::create_initial_token(&state, &a).await?;
    Ok(HttpResponse::Created().insert_header(("Cache-Control", "no-store")).json(RegistrationToken { token }))
}

/// A client's secret, shown once; never cached.
fn secret_response(status: StatusCode, created: crate::admin::clients::Created) -> HttpResponse {
    use secrecy::ExposeSecret;
    let body = ClientSecret {
        client_secret: created.secret.as_ref().map(|s| s.expose_secret().to_owned()),
        client: created.client,
    };
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(body)
}

/// A client registration over the API: the fields of `portcullis client add`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    client_id: String,
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    /// Default: authorization_code and refresh_token.
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Roles of the client itself (client_credentials); needs `roles:write` too.
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    first_party: bool,
    /// `required` (default) or `optional`.
    pkce: Option<String>,
    id_token_alg: Option<String>,
    #[serde(default)]
    require_mfa: bool,
    backchannel_logout_uri: Option<String>,
    /// A JWK Set (public keys) for private_key_jwt.
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    access_policy: Option<crate::policy::access::AccessPolicy>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    #[serde(default)]
    resources: Vec<String>,
    /// Refresh-token grace in seconds (0–60); absent: strict rotation.
    refresh_grace_secs: Option<i32>,
    /// `fapi2`: held to the FAPI 2.0 Security Profile (no secret is issued).
    profile: Option<String>,
    /// Access tokens only DPoP-bound (RFC 9449).
    #[serde(default)]
    dpop: bool,
    /// Authorization requests only pushed (RFC 9126).
    #[serde(default)]
    require_par: bool,
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write` (and `roles:write` to give the client roles). The secret is shown once.",
    request_body = NewClientBody,
    responses((status = 201, body = ClientSecret), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The client id is taken", body = ProblemDoc, content_type = "application/problem+json")))]
#[post("/admin/api/v1/clients")]
pub async fn create_client(
    caller: AdminCaller,
    state: web::Data<AppState>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = caller.may(Permission::ClientsWrite).await?;
    let b: NewClientBody = body(&raw)?;
    if !b.roles.is_empty() {
        // A client's roles are permissions it acts with: granting them needs roles:write.
        caller.may(Permission::RolesWrite).await?;
    }
    let spec = crate::admin::clients::ClientSpec {
        client_id: b.client_id,
        name: b.name,
        redirect_uris: b.redirect_uris,
        public: b.public,
        grants: b.grant_types,
        scopes: b.scopes,
        post_logout_redirect_uris: b.post_logout_redirect_uris,
        roles: b.roles,
        first_party: b.first_party,
        pkce: b.pkce,
        id_token_alg: b.id_token_alg,
        require_mfa: b.require_mfa,
        backchannel_logout_uri: b.backchannel_logout_uri,
        jwks: b.jwks.map(|j| j.to_string()),
        access_policy: b.access_policy,
        resources: b.resources,
        refresh_grace_secs: b.refresh_grace_secs,
        profile: b.profile,
        dpop: b.dpop,
        require_par: b.require_par,
    };
    let created = crate::admin::clients::add(&state, &a, &spec).await?;
    Ok(secret_response(StatusCode::CREATED, created))
}

#[utoipa::path(tag = "clients", description = "Needs `clients:write` (and `roles:write` to change the client's roles). Absent fields stay; `null` clears.",
    params(("client_id" = String, Path, description = "The client id")),
    request_body = crate::admin::clients::ClientPatch,
    responses((status = 200, body = ClientView), (status = 401, description = "No valid admin token", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Missing permission", body = ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Too many failed authentications from this address", body = ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No such record", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, description = "Invalid input; `field` names it", body = ProblemDoc, content_type = "application/problem+json")))]
#[patch("/admin/api/v1/clients/{client_id}")]
pub async fn update_client(
    caller: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let a = caller.may(Permission::ClientsWrite).await?;
    let patch: crate::admin::clients::ClientPatch = body(&raw)?;
    if patch.roles.is_some() {
        caller.may(Permission::RolesWrite).await?;
    }
    if patch.touches_credentials() {
        caller.fresh(Permission::ClientsWrite).await?;
    }
    Ok(HttpResponse::Ok().json(crate::admin::clients::update(&state, &a, &path, patch).await?))
}

/// A client and, for a confidential one, its secret (shown this once).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientSecret {
    #[serde(flatten)]
    client: ClientView,
    client_secret: Option<String>,
}
