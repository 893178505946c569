//! Protocol errors with their RFC codes. The specific reason is logged at
//! debug level; the client gets the code and a short, fixed description.

/// RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (authorization endpoint) error
/// codes, plus OIDC Core §3.1.2.6 and RFC 6750 §3.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// A parameter is missing, repeated, malformed or unsupported.
    InvalidRequest(&'static str),
    /// Client authentication failed (RFC 6749 §5.2): 401.
    InvalidClient {
        basic: bool,
    },
    /// The grant (code, refresh token, verifier) is invalid, expired, revoked,
    /// or was issued to another client or redirect URI.
    InvalidGrant(&'static str),
    UnauthorizedClient(&'static str),
    UnsupportedGrantType,
    InvalidScope(&'static str),
    /// `invalid_scope` naming the scope at fault (a scope token: RFC 6749
    /// §3.3's characters are all allowed in `error_description`).
    ScopeRefused {
        scope: crate::domain::Scope,
        why: &'static str,
    },
    AccessDenied(&'static str),
    UnsupportedResponseType,
    /// OIDC: `prompt=none` and the user must log in / consent.
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    /// RFC 6750: a bearer token that is malformed, expired or revoked.
    InvalidToken(&'static str),
    /// RFC 6750 §3.1: no token at all — a challenge without an error code.
    MissingToken,
    /// OIDC Core §3.1.2.6: `request_uri` is not supported (pushed requests come with PAR).
    RequestUriNotSupported,
    /// OIDC Core §3.1.2.6: the request object does not verify or is not acceptable.
    InvalidRequestObject(&'static str),
    /// OpenID Connect Unmet Authentication Requirements 1.0: an essential
    /// `acr` that none of our methods can meet.
    UnmetAuthenticationRequirements,
    InsufficientScope(&'static str),
    /// RFC 8707 §2: the requested resource is not one this client may use.
    InvalidTarget(&'static str),
    ServerError,
    TemporarilyUnavailable,
    /// Too many failed client authentications from this address: 429.
    TooManyRequests,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing, invalid or replayed.
    InvalidDpopProof(&'static str),
    /// RFC 9449 §8: the proof must carry the nonce in `DPoP-Nonce`.
    UseDpopNonce,
    /// RFC 8628 §3.5: the user has not answered yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: the device polls faster than its interval.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
}

impl OAuthError {
    /// `invalid_scope` naming `scope` (already split and checked by
    /// [`super::split_scope`]; anything else gets the unnamed form).
    pub fn refused_scope(scope: &str, why: &'static str) -> Self {
        match crate::domain::Scope::parse(scope) {
            Ok(scope) => Self::ScopeRefused { scope, why },
            Err(_) => Self::InvalidScope(why),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) | Self::ScopeRefused { .. } => "invalid_scope",
            Self::AccessDenied(_) => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::InvalidToken(_) | Self::MissingToken => "invalid_token",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidRequestObject(_) => "invalid_request_object",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable | Self::TooManyRequests => "temporarily_unavailable",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
        }
    }

    /// A short description: fixed text, or a scope token the caller sent
    /// (validated, so safe in a header and a redirect) — never internals.
    pub fn description(&self) -> std::borrow::Cow<'static, str> {
        let fixed: &'static str = match self {
            Self::ScopeRefused { scope, why } => return format!("{why}: {scope}").into(),
            Self::InvalidRequest(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidScope(d)
            | Self::AccessDenied(d)
            | Self::InvalidToken(d)
            | Self::InsufficientScope(d)
            | Self::InvalidTarget(d)
            | Self::InvalidRequestObject(d)
            | Self::InvalidDpopProof(d) => d,
            Self::UseDpopNonce => "the DPoP proof must carry the nonce in the DPoP-Nonce header",
            Self::AuthorizationPending => "the user has not answered yet",
            Self::SlowDown => "polling too fast: wait 5 seconds longer between polls",
            Self::ExpiredToken => "the device code has expired",
            Self::InvalidClient { .. } => "client authentication failed",
            Self::MissingToken => "a bearer token is required",
            Self::RequestUriNotSupported => "request_uri is not supported",
            Self::UnmetAuthenticationRequirements => "none of the essential acr values can be met",
            Self::UnsupportedGrantType => "the grant type is not supported",
            Self::UnsupportedResponseType => "only response_type=code is supported",
            Self::LoginRequired => "the user must log in",
            Self::ConsentRequired => "the user must consent",
            Self::InteractionRequired => "the user must interact",
            Self::ServerError => "internal error",
            Self::TemporarilyUnavailable => "try again shortly",
            Self::TooManyRequests => "too many requests from this address; try again later",
        };
        fixed.into()
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.description())
    }
}

impl From<crate::storage::LoadError> for OAuthError {
    fn from(e: crate::storage::LoadError) -> Self {
        match e {
            crate::storage::LoadError::Db(e) => e.into(),
            crate::storage::LoadError::Damaged(d) => d.into(),
        }
    }
}

impl From<crate::storage::Damaged> for OAuthError {
    /// A stored record that does not parse: the operator is told which
    /// record and field, the caller nothing more. A damaged client is the
    /// server's fault (`server_error`); a damaged account gets no tokens
    /// and a damaged grant is invalid (the client starts a new
    /// authorization), both with the ordinary texts.
    fn from(d: crate::storage::Damaged) -> Self {
        tracing::error!(error = %d, "a stored record does not parse");
        match d.record {
            "client" => Self::ServerError,
            "account" => Self::InvalidGrant("the user is no longer active"),
            _ => Self::InvalidGrant("the grant is invalid, expired or revoked"),
        }
    }
}

impl From<sea_orm::DbErr> for OAuthError {
    fn from(e: sea_orm::DbErr) -> Self {
        tracing::error!(error = %e, "database error in a protocol endpoint");
        Self::ServerError
    }
}
