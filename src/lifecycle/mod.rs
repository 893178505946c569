//! Account lifecycle: the single-use links that activate an account
//! (invitation), reset a password, prove an e-mail address or confirm a
//! sign-up, and the mail that carries them.
//!
//! The rules, each in one place:
//! - A link is 256 random bits; only its keyed hash is stored
//!   (`account_links`). It dies on use (claimed in the transaction that
//!   acts on it), on expiry, and when a newer link of the same purpose is
//!   made for the same account (or, for a sign-up, the same address).
//! - Following a link by GET changes nothing (mail scanners open links): the
//!   page it shows has a form, and only that POST claims the link.
//! - Every mail goes through [`deliver`], which counts it against the
//!   recipient address and the account (`mail_max_per_address`,
//!   `mail_max_per_account` per `mail_window_secs`).
//! - Nothing here answers differently for an account that does not exist
//!   where an anonymous caller could see it (`recovery::forgot` runs after
//!   the page has answered; `signup` answers the same for a taken address).

pub mod email;
pub mod recovery;
pub mod signup;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::config::Settings;
use crate::mail::Mail;
use crate::state::AppState;
use crate::storage::entities::account_link;

/// What a link is for; each has its page and its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Activates an account created without a password.
    Invite,
    /// Sets a new password (the second factor stays).
    Reset,
    /// Proves an address and makes it the account's.
    VerifyEmail,
    /// Creates a self-registered account.
    Signup,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reset => "reset",
            Self::VerifyEmail => "verify_email",
            Self::Signup => "signup",
        }
    }

    /// The page the link opens.
    pub fn path(self) -> &'static str {
        match self {
            Self::Invite => "/invitation",
            Self::Reset => "/password/reset",
            Self::VerifyEmail => "/email/verify",
            Self::Signup => "/signup/confirm",
        }
    }

    fn ttl_secs(self, s: &Settings) -> i64 {
        match self {
            Self::Invite => s.invitation_ttl_secs,
            Self::Reset => s.reset_link_ttl_secs,
            Self::VerifyEmail | Self::Signup => s.verify_email_ttl_secs,
        }
    }
}

/// A link just made: where it leads (shown once, never stored) and until when.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Link {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}

impl From<LinkError> for DeliverError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Db(e) => Self::Db(e),
            LinkError::Crypto(e) => Self::Mail(crate::mail::MailError::Build(e.to_string())),
        }
    }
}

impl From<LinkError> for crate::admin::AdminError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Db(e) => Self::Db(e),
            LinkError::Crypto(e) => Self::Crypto(e),
        }
    }
}

fn hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("account-link:{token}"))
}

/// What a link row holds besides its purpose.
#[derive(Debug, Default)]
pub(crate) struct LinkFor<'a> {
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub payload: Option<String>,
}

/// Makes a link in the caller's transaction; older links of the same purpose
/// for the same account (or, without one, for the same address) die.
pub(crate) async fn create<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    purpose: Purpose,
    target: LinkFor<'_>,
    now: DateTime<Utc>,
) -> Result<Link, LinkError> {
    // One link of a kind per account (or address), also when two requests
    // make one at once: on PostgreSQL they take turns on a lock of the
    // account (SQLite's write transactions take turns anyway).
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        let key = format!("account-link:{}", target.user_id.or(target.email).unwrap_or_default());
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [key.into()],
        ))
        .await?;
    }
    let older = account_link::Entity::delete_many().filter(account_link::Column::Purpose.eq(purpose.as_str()));
    let older = match (target.user_id, target.email) {
        (Some(u), _) => Some(older.filter(account_link::Column::UserId.eq(u))),
        (None, Some(e)) => {
            Some(older.filter(account_link::Column::UserId.is_null()).filter(account_link::Column::Email.eq(e)))
        }
        (None, None) => None,
    };
    if let Some(q) = older {
        q.exec(conn).await?;
    }
    let token = crate::crypto::random_token(32)?;
    let expires_at = now + Duration::seconds(purpose.ttl_secs(&state.settings));
    account_link::Entity::insert(account_link::ActiveModel {
        id_hash: Set(hash(state, &token)),
        purpose: Set(purpose.as_str().to_owned()),
        user_id: Set(target.user_id.map(str::to_owned)),
        email: Set(target.email.map(str::to_owned)),
        payload: Set(target.payload),
        created_ms: Set(now.timestamp_millis()),
        expires_ms: Set(expires_at.timestamp_millis()),
    })
    .exec(conn)
    .await?;
    let url = format!("{}{}?token={token}", state.settings.issuer.trim_end_matches('/'), purpose.path());
    Ok(Link { url, expires_at })
}

/// The live link behind `token` for `purpose` (not used, not expired), to
/// show its page; claims nothing. The stored hash is the row's id.
pub async fn peek<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    purpose: Purpose,
    token: &str,
) -> Result<Option<account_link::Model>, DbErr> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let now = state.clock.now().timestamp_millis();
    Ok(account_link::Entity::find_by_id(hash(state, token))
        .one(conn)
        .await?
        .filter(|l| l.purpose == purpose.as_str() && l.expires_ms > now))
}

/// Claims the link in the caller's transaction: `Some` once, for a live link
/// of this purpose; `None` if it was used (also at the same moment by
/// another request), expired or never existed.
pub(crate) async fn claim<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    purpose: Purpose,
    token: &str,
) -> Result<Option<account_link::Model>, DbErr> {
    let Some(link) = peek(state, conn, purpose, token).await? else {
        return Ok(None);
    };
    let gone = account_link::Entity::delete_by_id(link.id_hash.clone()).exec(conn).await?;
    Ok((gone.rows_affected == 1).then_some(link))
}

/// The stored hash of a link's token (for a claim made by another service
/// inside its own transaction, as the password change does).
pub(crate) fn stored_hash(state: &AppState, token: &str) -> String {
    hash(state, token)
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("mail is not configured (smtp_host or mail_dir)")]
    Off,
    #[error("too many mails to this address or about this account lately; try again later")]
    Limited,
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The permissions the account's roles give now, as a link's payload: the
/// password change that redeems the link refuses it if the account reaches
/// further by then (`admin::password`).
pub(crate) async fn reach_of<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<String, DbErr> {
    let held = crate::policy::permissions_of(&crate::storage::users::roles(conn, user_id).await?);
    let reach: Vec<&str> = held.iter().map(|p| p.as_str()).collect();
    Ok(serde_json::json!({ "reach": reach }).to_string())
}

/// Sends one mail, counted against the recipient address and (if any) the
/// account: over either limit it is not sent.
pub async fn deliver(state: &AppState, user_id: Option<&str>, mail: &Mail) -> Result<(), DeliverError> {
    admit(state, &state.db, user_id, &mail.to).await?;
    send(state, mail).await
}

/// Sends a mail already counted by [`admit`].
pub async fn send(state: &AppState, mail: &Mail) -> Result<(), DeliverError> {
    let mailer = state.mailer.as_ref().ok_or(DeliverError::Off)?;
    mailer.send(mail).await?;
    Ok(())
}

/// Counts one mail to `to` (and about `user_id`) against the limits, on
/// `conn` (the caller's transaction, if it holds one); `Err(Limited)` over
/// either. The counters are keyed by a keyed hash of the address, so the
/// table holds no addresses.
pub async fn admit<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    user_id: Option<&str>,
    to: &str,
) -> Result<(), DeliverError> {
    if state.mailer.is_none() {
        return Err(DeliverError::Off);
    }
    let s = &state.settings;
    let now = state.clock.now().timestamp_millis();
    let window = s.mail_window_secs * 1000;
    let address = state.master_key.hasher().hash(&format!("mail-to:{}", to.trim().to_lowercase()));
    let mut over = crate::authn::throttle::count_in_window(conn, &format!("mail-to:{address}"), window, now).await?
        > s.mail_max_per_address;
    if let Some(u) = user_id {
        over |= crate::authn::throttle::count_in_window(conn, &format!("mail-account:{u}"), window, now).await?
            > s.mail_max_per_account;
    }
    if over {
        return Err(DeliverError::Limited);
    }
    Ok(())
}
