//! argon2id password hashing on a bounded pool, and the password policy
//! (NIST SP 800-63B §3.1.1.2).
//!
//! Hashing is deliberately slow and memory-hungry (19 MiB a hash at the OWASP
//! baseline), so it runs on tokio's blocking threads behind a semaphore: at most
//! `max_concurrent` hashes at once, the rest wait up to `queue_timeout` and then
//! get [`PasswordError::Busy`] (a 503). A flood of logins therefore costs at most
//! `max_concurrent × m` memory and never occupies the async workers.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("too many password checks in progress; try again shortly")]
    Busy,
    #[error("password hashing failed")]
    Internal,
    #[error("{0}")]
    Policy(String),
}

/// The argon2id hasher with its concurrency cap.
///
/// The 19 MiB working memory of each concurrent hash is reused while hashes
/// follow each other (`memory`, filled on first use): allocating it per hash
/// made the allocator keep a copy per blocking thread (745 MB resident under a
/// 64-client login load) and cost a page-fault storm per login. Memory is
/// bounded by `max_concurrent × m` while busy, and given back to the
/// operating system once no hash has run for [`IDLE_RELEASE`] (see
/// [`working_memory`] for how it is made to go back).
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    memory: Arc<std::sync::Mutex<Vec<Vec<Block>>>>,
    /// Counts finished hashes; an idle release only happens if it has not
    /// moved since the release was planned.
    finished: Arc<std::sync::atomic::AtomicU64>,
    max_concurrent: usize,
    /// How long the working memories are kept after the last hash.
    idle_release: Duration,
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A hash of a random password, verified against when the user does not
    /// exist so that the response time does not tell.
    dummy_phc: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        max_concurrent: usize,
        queue_timeout: Duration,
    ) -> Result<Self, PasswordError> {
        let params = Params::new(memory_kib, iterations, parallelism, None).map_err(|_| PasswordError::Internal)?;
        let max_concurrent = max_concurrent.max(1);
        // Filled lazily (idle processes stay small); never more than one
        // buffer per permit.
        let memory = Vec::with_capacity(max_concurrent);
        let mut seed = [0u8; 24];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| PasswordError::Internal)?;
        let dummy = argon(&params).hash_password(&seed).map_err(|_| PasswordError::Internal)?.to_string();
        Ok(Self {
            params,
            memory: Arc::new(std::sync::Mutex::new(memory)),
            finished: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            max_concurrent,
            idle_release: IDLE_RELEASE,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            queue_timeout,
            dummy_phc: dummy.into(),
        })
    }

    /// Runs `f` on a blocking thread once a permit is free, lending it one of
    /// the pre-allocated working memories.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Internal)?;
        let me = self.clone();
        let blocks = self.params.block_count();
        let runtime = tokio::runtime::Handle::current();
        // The blocking task runs to its end even if the request is dropped
        // meanwhile (a client that hangs up), so the release is planned there.
        let out = tokio::task::spawn_blocking(move || {
            // A free buffer, or a new one while fewer than the permits exist.
            let mut mem = me.memory.lock().ok().and_then(|mut p| p.pop()).unwrap_or_else(|| working_memory(blocks));
            let out = f(&mut mem);
            if let Ok(mut p) = me.memory.lock() {
                p.push(mem);
            }
            drop(permit);
            me.release_when_idle(&runtime);
            out
        })
        .await
        .map_err(|_| PasswordError::Internal)?;
        Ok(out)
    }

    /// Once no hash is running, plans to free the working memories after
    /// `idle_release` unless another hash finishes first: a login flood
    /// keeps them, a quiet server gives them back.
    fn release_when_idle(&self, runtime: &tokio::runtime::Handle) {
        use std::sync::atomic::Ordering;
        let seen = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        if self.permits.available_permits() < self.max_concurrent {
            return;
        }
        let (finished, pool, idle) = (self.finished.clone(), self.memory.clone(), self.idle_release);
        runtime.spawn(async move {
            tokio::time::sleep(idle).await;
            if finished.load(Ordering::Acquire) == seen
                && let Ok(mut p) = pool.lock()
            {
                p.clear();
            }
        });
    }

    /// Hashes a password (already checked against the policy) into a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let pw = normalise(password.expose_secret());
        let params = self.params.clone();
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Internal)?;
        self.run(move |mem| {
            let mut out = [0u8; 32];
            argon(&params)
                .hash_password_into_with_memory(pw.as_bytes(), &salt, &mut out, &mut mem[..params.block_count()])
                .ok()?;
            Some(format!(
                "$argon2id$v=19$m={},t={},p={}${}${}",
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                STANDARD_NO_PAD.encode(salt),
                STANDARD_NO_PAD.encode(out)
            ))
        })
        .await?
        .ok_or(PasswordError::Internal)
    }

    /// Verifies a password against a stored PHC string (or, with `None`, against
    /// the dummy hash, always failing: equal work for unknown users). Returns
    /// `(matches, needs_rehash)`.
    pub async fn verify(&self, password: &SecretString, phc: Option<&str>) -> Result<(bool, bool), PasswordError> {
        let real = phc.is_some();
        let phc: String = phc.map_or_else(|| self.dummy_phc.to_string(), str::to_owned);
        let pw = normalise(password.expose_secret());
        let params = self.params.clone();
        self.run(move |mem| {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return (false, false);
            };
            let ok = verify_with_memory(&parsed, pw.as_bytes(), mem);
            let weaker = Params::try_from(&parsed).map_or(true, |p| {
                p.m_cost() < params.m_cost() || p.t_cost() < params.t_cost() || p.p_cost() < params.p_cost()
            }) || parsed.algorithm.as_str() != "argon2id";
            (ok && real, ok && real && weaker)
        })
        .await
    }
}

/// Verifies against a PHC string with the lent working memory (or a fresh one
/// when the stored parameters need more), comparing in constant time.
fn verify_with_memory(parsed: &PasswordHash, pw: &[u8], mem: &mut [Block]) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt.as_ref(), parsed.hash.as_ref()) else {
        return false;
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let algorithm = match parsed.algorithm.as_str() {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => Algorithm::Argon2d,
        _ => return false,
    };
    let version = match parsed.version {
        Some(0x10) => Version::V0x10,
        _ => Version::V0x13,
    };
    let expected: &[u8] = expected.as_ref();
    let mut out = vec![0u8; expected.len()];
    let a = Argon2::new(algorithm, version, params.clone());
    let need = params.block_count();
    let done = if need <= mem.len() {
        a.hash_password_into_with_memory(pw, salt.as_ref(), &mut out, &mut mem[..need])
    } else {
        a.hash_password_into(pw, salt.as_ref(), &mut out)
    };
    done.is_ok() && crate::crypto::constant_time_eq(&out, expected)
}

/// How long the working memories are kept after the last hash (a second
/// or two between the logins of a flood is not idle).
pub const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// glibc serves an allocation above 32 MiB (the highest its dynamic mmap
/// threshold goes on 64-bit) with a mapping of its own and unmaps it when it
/// is freed. A 19 MiB buffer would instead raise that threshold when freed and
/// then be carved from a per-thread arena, which keeps the pages: freeing it
/// would not lower the resident size. (Under a strict overcommit limit,
/// `vm.overcommit_memory=2`, each slot is charged the whole 33 MiB though
/// only 19 MiB is ever touched.)
const MAPPED_BYTES: usize = 33 << 20;

/// A zeroed working memory of `blocks` argon2 blocks. Its capacity is at
/// least [`MAPPED_BYTES`], so dropping it returns its pages to the operating
/// system at once; only the `blocks` actually used are ever touched, so the
/// rest of the reservation costs no resident memory.
fn working_memory(blocks: usize) -> Vec<Block> {
    let mut v = Vec::with_capacity(blocks.max(MAPPED_BYTES / std::mem::size_of::<Block>()));
    v.resize(blocks, Block::default());
    v
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// NFKC, so the same password typed on different keyboards/OSes matches
/// (NIST SP 800-63B §3.1.1.2).
fn normalise(pw: &str) -> String {
    pw.nfkc().collect()
}

/// The most common passwords of at least 8 characters among the top 100,000 of
/// a public breach corpus (SecLists "10 million password list", lower-cased,
/// sorted): NIST SP 800-63B asks verifiers to refuse known-breached values.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Whether `pw` (any case) is on the common-password list. Binary search over
/// the sorted, embedded list: no allocation, no start-up cost.
pub fn is_common(pw: &str) -> bool {
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let list = LIST.get_or_init(|| COMMON_PASSWORDS.lines().collect());
    let lower = pw.to_lowercase();
    list.binary_search(&lower.as_str()).is_ok()
}

/// What a new password must satisfy. No composition rules (NIST SP 800-63B).
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub min_length_admin: usize,
}

impl PasswordPolicy {
    /// Longest accepted password, in characters (NIST: at least 64).
    pub const MAX_CHARS: usize = 256;

    /// Checks a new password; `is_admin` applies the stricter minimum; the
    /// username (if known) must not be the password.
    pub fn check(&self, password: &SecretString, is_admin: bool, username: Option<&str>) -> Result<(), PasswordError> {
        let pw = normalise(password.expose_secret());
        let n = pw.chars().count();
        let min = if is_admin { self.min_length_admin.max(self.min_length) } else { self.min_length };
        if n < min {
            return Err(PasswordError::Policy(format!("password must be at least {min} characters")));
        }
        if n > Self::MAX_CHARS {
            return Err(PasswordError::Policy(format!("password must be at most {} characters", Self::MAX_CHARS)));
        }
        if pw.chars().all(|c| c == pw.chars().next().unwrap_or(' ')) {
            return Err(PasswordError::Policy("password must not be one repeated character".into()));
        }
        let lower = pw.to_lowercase();
        // Short names would rule out too much (a user "al" could use no "al").
        let contains_name = username.is_some_and(|u| u.chars().count() >= 4 && lower.contains(&u.to_lowercase()));
        if contains_name || lower.contains("portcullis") {
            return Err(PasswordError::Policy("password must not contain the username or the service name".into()));
        }
        if is_common(&pw) {
            return Err(PasswordError::Policy(
                "this password is on a list of commonly used and breached passwords; choose another".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(19 * 1024, 2, 1, 2, Duration::from_secs(5)).unwrap()
    }

    fn s(x: &str) -> SecretString {
        SecretString::from(x.to_owned())
    }

    #[tokio::test]
    async fn the_working_memory_is_kept_while_busy_and_given_back_when_idle() {
        // Small parameters: a hash takes far less than the idle time, so the
        // release planned by the first hash is still pending when the
        // second one finishes.
        let idle = Duration::from_millis(300);
        let h =
            PasswordHasher { idle_release: idle, ..PasswordHasher::new(64, 1, 1, 2, Duration::from_secs(5)).unwrap() };
        let phc = h.hash(&s("correct horse battery")).await.unwrap();
        assert_eq!(h.memory.lock().unwrap().len(), 1, "kept for the next hash");
        tokio::time::sleep(idle / 2).await;
        assert!(h.verify(&s("correct horse battery"), Some(&phc)).await.unwrap().0);
        tokio::time::sleep(idle * 2 / 3).await;
        assert_eq!(h.memory.lock().unwrap().len(), 1, "a hash since then postponed the release");
        tokio::time::sleep(idle * 3).await;
        assert!(h.memory.lock().unwrap().is_empty(), "released after the idle time");
        // Big enough that glibc maps it apart and unmaps it on drop, and
        // zeroed only as far as argon2 uses it.
        let m = working_memory(19 * 1024);
        assert!(m.capacity() * std::mem::size_of::<Block>() > 32 << 20);
        assert_eq!(m.len(), 19 * 1024);
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hasher();
        let phc = h.hash(&s("correct horse battery")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(h.verify(&s("correct horse battery"), Some(&phc)).await.unwrap(), (true, false));
        assert_eq!(h.verify(&s("wrong"), Some(&phc)).await.unwrap(), (false, false));
        assert_eq!(h.verify(&s("anything"), None).await.unwrap(), (false, false));
        assert_eq!(h.verify(&s("x"), Some("not a phc")).await.unwrap(), (false, false));
    }

    #[tokio::test]
    async fn a_hash_with_weaker_parameters_asks_for_a_rehash() {
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap())
            .hash_password(b"pw-123456789")
            .unwrap()
            .to_string();
        assert_eq!(hasher().verify(&s("pw-123456789"), Some(&weak)).await.unwrap(), (true, true));
    }

    #[tokio::test]
    async fn our_phc_strings_match_the_argon2_crates_in_both_directions() {
        use argon2::PasswordVerifier;
        let h = hasher();
        let ours = h.hash(&s("interop passphrase")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon(&Params::new(19 * 1024, 2, 1, None).unwrap()).verify_password(b"interop passphrase", &parsed).is_ok()
        );
        let theirs = argon(&Params::new(19 * 1024, 2, 1, None).unwrap())
            .hash_password(b"interop passphrase")
            .unwrap()
            .to_string();
        assert_eq!(h.verify(&s("interop passphrase"), Some(&theirs)).await.unwrap(), (true, false));
        assert_eq!(h.verify(&s("other"), Some(&theirs)).await.unwrap(), (false, false));
    }

    #[test]
    fn the_policy_counts_characters_not_bytes_and_has_no_composition_rules() {
        let p = PasswordPolicy { min_length: 8, min_length_admin: 12 };
        assert!(p.check(&s("short"), false, None).is_err());
        assert!(p.check(&s("alllowercase"), false, None).is_ok());
        assert!(p.check(&s("ünïcödé!"), false, None).is_ok());
        assert!(p.check(&s("eightchr"), true, None).is_err(), "admins need 12");
        assert!(p.check(&s("aaaaaaaaaaaa"), false, None).is_err());
        assert!(p.check(&s(&"ab".repeat(200)), false, None).is_err());
    }

    #[test]
    fn common_and_context_specific_passwords_are_refused() {
        let p = PasswordPolicy { min_length: 8, min_length_admin: 12 };
        for pw in ["password", "Password1", "12345678", "iloveyou", "QWERTYUIOP", "football"] {
            assert!(is_common(pw), "{pw} is on the list");
            assert!(p.check(&s(pw), false, None).is_err(), "{pw}");
        }
        assert!(!is_common("violet anvil tramline"));
        assert!(p.check(&s("alice-rocks-2026"), false, Some("Alice")).is_err());
        assert!(p.check(&s("my portcullis pw"), false, None).is_err());
    }
}
