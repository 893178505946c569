//! The portable migration set: every migration runs unchanged on SQLite and
//! PostgreSQL. One file per change; never edit a migration that has shipped.

pub use sea_orm_migration::prelude::*;

mod m20261130_000001_initial;
mod m20261130_000002_login;
mod m20261130_000003_mfa;
mod m20261130_000004_oauth;
mod m20261130_000005_access_policy;
mod m20261130_000006_client_resources;
mod m20261201_000007_security;
mod m20261201_000008_request_login;
mod m20261201_000009_claims_request;
mod m20261201_000010_profile_scopes;
mod m20261201_000011_passkeys;
mod m20261202_000012_account_links;
mod m20261202_000013_federation;
mod m20261202_000014_audit_chain;
mod m20261202_000015_data_keys;
mod m20261202_000016_managed_by;
mod m20261202_000017_finance_grade;
mod m20261202_000018_device_codes;
mod m20261202_000019_client_registration;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_initial::Migration),
            Box::new(m20261130_000002_login::Migration),
            Box::new(m20261130_000003_mfa::Migration),
            Box::new(m20261130_000004_oauth::Migration),
            Box::new(m20261130_000005_access_policy::Migration),
            Box::new(m20261130_000006_client_resources::Migration),
            Box::new(m20261201_000007_security::Migration),
            Box::new(m20261201_000008_request_login::Migration),
            Box::new(m20261201_000009_claims_request::Migration),
            Box::new(m20261201_000010_profile_scopes::Migration),
            Box::new(m20261201_000011_passkeys::Migration),
            Box::new(m20261202_000012_account_links::Migration),
            Box::new(m20261202_000013_federation::Migration),
            Box::new(m20261202_000014_audit_chain::Migration),
            Box::new(m20261202_000015_data_keys::Migration),
            Box::new(m20261202_000016_managed_by::Migration),
            Box::new(m20261202_000017_finance_grade::Migration),
            Box::new(m20261202_000018_device_codes::Migration),
            Box::new(m20261202_000019_client_registration::Migration),
        ]
    }
}
