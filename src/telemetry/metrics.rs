//! The Prometheus series of one instance (served by `web::metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The application's metrics and their registry (one per instance).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    statements: Family<RouteLabels, Counter>,
    logins: Family<LoginLabels, Counter>,
    lockouts: Counter,
    second_factor: Family<OutcomeLabels, Counter>,
    tokens: Family<GrantLabels, Counter>,
    refresh_reuse: Counter,
    audit_seq: Gauge,
    audit_head: Family<HeadLabels, Gauge>,
    audit_lag: Family<SinkLabels, Gauge>,
    audit_dead: Family<SinkLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeadLabels {
    hash: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let statements = Family::<RouteLabels, Counter>::default();
        let logins = Family::<LoginLabels, Counter>::default();
        let lockouts = Counter::default();
        let second_factor = Family::<OutcomeLabels, Counter>::default();
        let tokens = Family::<GrantLabels, Counter>::default();
        let refresh_reuse = Counter::default();
        registry.register("http_requests", "HTTP requests by method, route pattern and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route pattern", latency.clone());
        registry.register(
            "db_statements",
            "SQL statements sent while answering requests, by route pattern (with http_requests: statements per request)",
            statements.clone(),
        );
        registry.register(
            "logins",
            "First login steps by method (password, passkey) and result (success, failure, locked, disabled, rate_limited)",
            logins.clone(),
        );
        registry.register("account_lockouts", "Accounts locked after repeated failures", lockouts.clone());
        registry.register("second_factor_checks", "Second-factor checks by outcome", second_factor.clone());
        registry.register("tokens_issued", "Access tokens issued by grant type", tokens.clone());
        registry.register(
            "refresh_token_reuse",
            "Rotated-out refresh tokens presented again (families revoked)",
            refresh_reuse.clone(),
        );
        let audit_seq = Gauge::default();
        let audit_head = Family::<HeadLabels, Gauge>::default();
        registry.register("audit_chain_seq", "Sequence number of the last sealed audit record", audit_seq.clone());
        registry.register(
            "audit_chain_head",
            "The audit chain's head hash (label), 1 for the current head",
            audit_head.clone(),
        );
        let audit_lag = Family::<SinkLabels, Gauge>::default();
        let audit_dead = Family::<SinkLabels, Gauge>::default();
        registry.register("audit_stream_lag", "Sealed audit records not yet delivered, by sink", audit_lag.clone());
        registry.register(
            "audit_stream_dead_letters",
            "Audit records a sink gave up on after every retry",
            audit_dead.clone(),
        );
        // The usual series exist from the start (at 0): dashboards and
        // rate() see them before the first event.
        for method in ["password", "passkey"] {
            for result in ["success", "failure"] {
                let _ = logins.get_or_create(&LoginLabels { method: method.into(), result: result.into() });
            }
        }
        for result in ["success", "failure"] {
            let _ = second_factor.get_or_create(&OutcomeLabels { result: result.into() });
        }
        Self {
            registry,
            requests,
            latency,
            statements,
            logins,
            lockouts,
            second_factor,
            tokens,
            refresh_reuse,
            audit_seq,
            audit_head,
            audit_lag,
            audit_dead,
        }
    }
}

impl Metrics {
    /// A first login step: `method` password or passkey; `result` a class
    /// (never a user or a name).
    pub fn login(&self, method: &str, result: &str) {
        self.logins.get_or_create(&LoginLabels { method: method.to_owned(), result: result.to_owned() }).inc();
    }

    /// An account was locked by repeated failures.
    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    pub fn second_factor(&self, result: &str) {
        self.second_factor.get_or_create(&OutcomeLabels { result: result.to_owned() }).inc();
    }

    pub fn token_issued(&self, grant: &str) {
        self.tokens.get_or_create(&GrantLabels { grant: grant.to_owned() }).inc();
    }

    /// One request answered: by method, route pattern and status, its
    /// latency and the SQL statements it sent.
    pub fn request(&self, method: &str, route: &str, status: u16, secs: f64, statements: u32) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        let route_label = RouteLabels { route: route.to_owned() };
        self.latency.get_or_create(&route_label).observe(secs);
        self.statements(route, statements);
    }

    /// SQL statements sent by one request of `route` (none: nothing to add).
    pub fn statements(&self, route: &str, statements: u32) {
        if statements > 0 {
            self.statements.get_or_create(&RouteLabels { route: route.to_owned() }).inc_by(u64::from(statements));
        }
    }

    /// The request counter of one method, route and status, resolved once
    /// (a path answered from memory counts itself without the label lookup).
    pub fn request_counter(&self, method: &str, route: &str, status: u16) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .clone()
    }

    pub fn refresh_reuse(&self) {
        self.refresh_reuse.inc();
    }

    /// The audit chain's head as this instance last sealed or saw it.
    pub fn audit_head(&self, seq: i64, hash: &str) {
        let label = HeadLabels { hash: hash.to_owned() };
        if self.audit_seq.get() == seq && self.audit_head.get(&label).is_some() {
            return;
        }
        self.audit_seq.set(seq);
        self.audit_head.clear();
        self.audit_head.get_or_create(&label).set(1);
    }

    /// A sink's lag behind the chain's head and its dead letters.
    pub fn audit_stream(&self, sink: &str, lag: i64, dead_letters: i64) {
        let l = SinkLabels { sink: sink.to_owned() };
        self.audit_lag.get_or_create(&l).set(lag.max(0));
        self.audit_dead.get_or_create(&l).set(dead_letters);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
