//! Portcullis: an OAuth 2.0 / OpenID Connect identity provider.
//!
//! The crate is both the server (`portcullis serve`) and its admin CLI; both use
//! the same services. See `docs/ARCHITECTURE.md`.

pub mod admin;
pub mod authn;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod oauth;
pub mod oidc;
pub mod session;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tokens;
pub mod web;
