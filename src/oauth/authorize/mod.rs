//! The authorization endpoint's core (RFC 6749 §4.1, OIDC Core §3.1.2):
//! [`request`] parses and checks a request, [`flow`] decides what it still
//! needs and issues the code. The HTTP side — pages, redirects, form posts —
//! is `web::authorize`.

pub mod flow;
pub mod request;

pub use flow::{Need, Next, handle_of_return, load_request, mark_login, resume_path};
pub use request::{AuthzRequest, Failure, Reply};
