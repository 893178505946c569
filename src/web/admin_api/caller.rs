//! The callers of the admin API as extractors, so each handler's guard is in
//! its signature: [`Caller<P>`] is a caller authenticated and holding
//! permission `P` (and, where `P` asks for it, a recent login), or the
//! request is answered with the problem before the handler runs.
//! [`AdminCaller`] is a caller authenticated only, for the few operations
//! whose further permissions depend on the body (granting roles on create).
//! Failed authentications count against the source address and every
//! refusal is audited, in this one place.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::{Value, json};

use super::Problem;
use crate::admin::{Actor, AdminError};
use crate::policy::{Permission, Principal, permissions_of};
use crate::state::AppState;
use crate::storage::{AuditEvent, record_audit};

/// A permission a route needs, as a type.
pub trait Needs {
    const PERMISSION: Permission;
    /// Whether a user's token must also come from a recent login.
    const FRESH: bool;
}

macro_rules! needs {
    ($($(#[$doc:meta])* $name:ident = $perm:ident, fresh: $fresh:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Needs for $name {
            const PERMISSION: Permission = Permission::$perm;
            const FRESH: bool = $fresh;
        }
    )*};
}

needs! {
    /// `users:read`.
    UsersRead = UsersRead, fresh: false;
    /// `users:write`.
    UsersWrite = UsersWrite, fresh: false;
    /// `users:write` with a recent login: erasing an account.
    UsersWriteFresh = UsersWrite, fresh: true;
    /// `users:credentials`, always with a recent login.
    UsersCredentials = UsersCredentials, fresh: true;
    /// `clients:read`.
    ClientsRead = ClientsRead, fresh: false;
    /// `clients:write`.
    ClientsWrite = ClientsWrite, fresh: false;
    /// `clients:write` with a recent login: secrets and deletion.
    ClientsWriteFresh = ClientsWrite, fresh: true;
    /// `roles:write`.
    RolesWrite = RolesWrite, fresh: false;
    /// `keys:rotate`.
    KeysRotate = KeysRotate, fresh: false;
    /// `audit:read`.
    AuditRead = AuditRead, fresh: false;
    /// `sessions:revoke`.
    SessionsRevoke = SessionsRevoke, fresh: false;
}

/// A caller holding `P`: the audit actor the admin services are called
/// through (it derefs to [`Actor`]).
pub struct Caller<P: Needs> {
    actor: Actor,
    _needs: PhantomData<P>,
}

impl<P: Needs> std::ops::Deref for Caller<P> {
    type Target = Actor;
    fn deref(&self) -> &Actor {
        &self.actor
    }
}

impl<P: Needs + 'static> FromRequest for Caller<P> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let caller = AdminCaller::authenticate(req).await?;
            let actor = if P::FRESH { caller.fresh(P::PERMISSION).await? } else { caller.may(P::PERMISSION).await? };
            Ok(Self { actor, _needs: PhantomData })
        })
    }
}

/// An authenticated caller of the admin API whose permissions are checked
/// by the handler ([`AdminCaller::may`], [`AdminCaller::fresh`]).
pub struct AdminCaller {
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
}

impl FromRequest for AdminCaller {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(Self::authenticate(req.clone()))
    }
}

impl AdminCaller {
    /// The caller, authenticated; failures are audited and count against
    /// the source address like at the token endpoint (over the limit: 429
    /// before any work, and no audit write).
    async fn authenticate(req: HttpRequest) -> Result<Self, Problem> {
        let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| {
            tracing::error!("admin API mounted without the application state");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "the request could not be completed")
        })?;
        let gate = crate::oauth::client_auth::FailureGate::new(
            &state,
            crate::web::client_info::origin(&state, &req).ip_addr(),
            state.clock.now().timestamp_millis(),
        );
        if gate.blocked() {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "too many failed attempts from this address",
            ));
        }
        match principal_of(&state, &req).await {
            Ok(principal) => Ok(Self { principal, state, req }),
            Err(e) => {
                if e.status == StatusCode::UNAUTHORIZED {
                    gate.failed();
                    audit_refusal(&state, &req, "admin_api.unauthorized", None, None).await;
                }
                Err(e)
            }
        }
    }

    /// The actor for `perm` (a recent login too for `users:credentials`),
    /// or the problem (audited).
    pub async fn may(&self, perm: Permission) -> Result<Actor, Problem> {
        self.holds(perm).await?;
        if perm == Permission::UsersCredentials {
            self.recent(perm).await?;
        }
        Ok(self.actor())
    }

    /// `may`, with a recent login whatever the permission.
    pub async fn fresh(&self, perm: Permission) -> Result<Actor, Problem> {
        self.holds(perm).await?;
        self.recent(perm).await?;
        Ok(self.actor())
    }

    /// 403 (audited) unless the caller holds `perm`.
    async fn holds(&self, perm: Permission) -> Result<(), Problem> {
        match self.principal.authorize(perm) {
            Ok(_) => Ok(()),
            Err(e) => {
                audit_refusal(&self.state, &self.req, "admin_api.forbidden", Some(&self.principal), Some(perm)).await;
                Err(Problem::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string()))
            }
        }
    }

    /// A user's token must come from a login at most `admin_reauth_secs` old
    /// (RFC 9470 step-up otherwise); a service client proves itself at every
    /// token request.
    async fn recent(&self, perm: Permission) -> Result<(), Problem> {
        if self.principal.is_client {
            return Ok(());
        }
        let max = self.state.settings.admin_reauth_secs;
        let now = self.state.clock.now().timestamp();
        if self.principal.auth_time.is_some_and(|t| now - t <= max) {
            return Ok(());
        }
        audit_refusal(&self.state, &self.req, "admin_api.reauth_required", Some(&self.principal), Some(perm)).await;
        Err(Problem {
            step_up_max_age: Some(max),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "Recent authentication required",
                format!("credential changes need a login at most {max} s old; get a new token (max_age={max})"),
            )
        })
    }

    fn actor(&self) -> Actor {
        let info = crate::web::client_info::ip(&self.state, &self.req);
        Actor::for_principal(&self.principal, info, crate::web::client_info::user_agent(&self.req))
    }
}

/// A refused admin-API call, for the audit log (V16.3): who (if known), which
/// permission was missing, the method and path, and from where. Best effort:
/// a failure to write it must not turn a 401/403 into a 500.
async fn audit_refusal(
    state: &AppState,
    req: &HttpRequest,
    event: &'static str,
    p: Option<&Principal>,
    perm: Option<Permission>,
) {
    let mut e = AuditEvent::new(event, "failure")
        .source(crate::web::client_info::ip(state, req), crate::web::client_info::user_agent(req))
        .detail(
            json!({ "method": req.method().as_str(), "path": req.path(), "permission": perm.map(Permission::as_str) }),
        );
    if let Some(p) = p {
        e = e.actor(format!("{}:{}", if p.is_client { "client" } else { "user" }, p.subject));
    }
    if let Err(err) = record_audit(&state.db, e, state.clock.now()).await {
        tracing::warn!(error = %err, "could not audit a refused admin call");
    }
}

fn unauthorized() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "a valid admin access token is required")
}

/// Authenticates the bearer token and loads the caller's current permissions.
async fn principal_of(state: &AppState, req: &HttpRequest) -> Result<Principal, Problem> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Problem { no_token: true, ..unauthorized() })?;
    // Bearer only: a DPoP-bound token is refused here (it would need its proof).
    let claims = crate::oauth::token::check_presented(state, token.trim(), crate::oauth::dpop::Sender::Bearer)
        .await
        .map_err(|_| unauthorized())?;
    let audience = state.admin_audience();
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(unauthorized());
    }
    let sub = claims.get("sub").and_then(Value::as_str).ok_or_else(unauthorized)?.to_owned();
    let client_id = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
    // A client acting for itself (client_credentials: sub = client_id, no
    // user login behind it) is never mistaken for a user, even if a client
    // were registered under an id that equals some user's UUID.
    let acting_for_itself = sub == client_id && claims.get("auth_time").is_none();
    if acting_for_itself {
        return match state.clients.get(&state.db, client_id).await.map_err(AdminError::from)? {
            Some(c) => Ok(Principal {
                subject: sub,
                is_client: true,
                permissions: permissions_of(&c.roles),
                roles: c.roles.clone(),
                auth_time: None,
            }),
            None => Err(unauthorized()),
        };
    }
    let Some(u) = crate::storage::users::usable(&state.db, &sub).await? else {
        return Err(unauthorized());
    };
    // The same rule as the admin pages: a password-only login never
    // administers, whatever the MFA policy says of its roles, and an admin
    // whose policy needs a passkey administers only with it.
    let amr: Vec<String> = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(need) = crate::authn::mfa::administer_shortfall(state, &u.id, &amr).await? {
        return Err(Problem {
            step_up_acr: Some(need),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "Second factor required",
                "the admin API needs a login with a second factor (a passkey, where the user's policy asks for one); sign in again",
            )
        });
    }
    let roles = crate::storage::users::roles(&state.db, &u.id).await?;
    let auth_time = claims.get("auth_time").and_then(Value::as_i64);
    Ok(Principal { subject: sub, is_client: false, permissions: permissions_of(&roles), roles, auth_time })
}
