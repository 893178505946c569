//! The HTTP client the `openidconnect` crate talks to providers through:
//! reqwest (the one HTTP stack of the server), no redirects (a provider
//! that redirects its token endpoint could point us anywhere), a timeout,
//! and a bound on what a provider may make us read.

use std::future::Future;
use std::pin::Pin;

/// The largest body read from a provider (discovery, keys, tokens).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] openidconnect::http::Error),
    #[error("the provider's answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

pub struct Http(reqwest::Client);

impl Http {
    /// The state's one client for providers (no redirects, 10 s).
    pub fn of(state: &crate::state::AppState) -> Self {
        Self(state.upstream_http.clone())
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<openidconnect::http::Response<Vec<u8>>, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut response = self.0.execute(request).await?;
            let mut out = openidconnect::http::Response::builder().status(response.status());
            if let Some(h) = out.headers_mut() {
                *h = response.headers().clone();
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(out.body(body)?)
        })
    }
}

/// An error and its causes on one line (the crate's errors nest).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
