//! Attacks on the running server, one test per defect found by attacking it
//! black-box (issue #13). Each performs the attack end to end through the real
//! app (HTTP, the CLI binary, or the admin services as the API calls them) and
//! fails if the defence is missing; each was seen failing before its fix.

mod admin;
mod cli;
mod escalation;
mod limits;
mod mfa;
mod oauth;
