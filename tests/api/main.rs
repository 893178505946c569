//! Integration tests: one binary, the real app on port 0, a fresh database each
//! (SQLite in a temporary directory; a uniquely named PostgreSQL database when
//! `PORTCULLIS_TEST_DATABASE_URL` is set, dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abac;
mod abuse;
mod admin_api;
mod admin_pages;
mod agents;
mod apply;
mod attacks;
mod audit_chain;
mod audit_stream;
mod browser;
mod budget;
mod caches;
mod certification;
mod cimd;
mod cli;
mod console;
mod crash;
mod damaged;
mod federation;
mod finance;
mod helpers;
mod http_basics;
mod indexes;
pub mod lifecycle;
mod login;
mod mailbox;
mod master_key;
mod mfa;
mod oauth;
mod oauth_more;
mod operations;
mod passkey_policy;
mod passkeys;
mod recipes;
mod registration;
mod relying;
mod replicas;
#[path = "../support/softkey.rs"]
mod softkey;
