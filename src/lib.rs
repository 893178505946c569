//! Portcullis: an OAuth 2.0 / OpenID Connect identity provider.
//!
//! The crate is both the server (`portcullis serve`) and its admin CLI; both use
//! the same services. See `docs/ARCHITECTURE.md`.

#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod authn;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod crypto;
#[cfg(feature = "server")]
pub mod domain;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod federation;
#[cfg(feature = "server")]
pub mod lifecycle;
#[cfg(feature = "server")]
pub mod mail;
#[cfg(feature = "server")]
pub mod oauth;
#[cfg(feature = "server")]
pub mod oidc;
#[cfg(feature = "server")]
pub mod policy;
#[cfg(feature = "server")]
pub mod provision;
#[cfg(feature = "server")]
pub mod session;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod storage;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod tokens;
/// The token verifier of relying services: the `portcullis-verify` crate.
#[cfg(feature = "verify")]
pub use portcullis_verify as verify;
#[cfg(feature = "server")]
pub mod web;
