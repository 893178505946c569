//! The HTTP edge: route tables (`routes`), the browser pages, the protocol
//! endpoints' HTTP side, the admin API, and the middleware (security
//! headers, request ids, limits, metrics). Handlers read the request —
//! parameters, cookies, origin — and call the core services; they decide
//! nothing the core decides.

pub mod account;
pub mod admin;
pub mod admin_api;
pub mod authorize;
pub mod client_info;
pub mod cookies;
pub mod csrf;
pub mod device;
pub mod documents;
pub mod form;
pub mod headers;
pub mod health;
pub mod limits;
pub mod links;
pub mod login;
pub mod logout;
pub mod metrics;
pub mod mfa;
pub mod oidc;
pub mod pages;
pub mod passkey;
pub mod passkey_manage;
pub mod protocol_error;
pub mod reauth;
pub mod register;
pub mod request_span;
pub mod routes;
pub mod token;
pub mod ui;
pub mod upstream;
