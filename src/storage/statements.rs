//! Counts the SQL statements sent on behalf of one request.
//!
//! The database pool reports every statement it runs to [`seen`] (sea-orm's
//! metric callback, installed by [`super::connect`]); while a request is being
//! answered inside [`counted`], the statement lands on that request's
//! counter — a task-local, so background work (revocation sync, purges, the
//! audit chain) running beside it is never counted against it. The access
//! log and `portcullis_db_statements` by route come from it, and the
//! statement-budget test (`tests/api/budget.rs`) holds each hot path to its
//! number. `BEGIN` and `COMMIT` are not statements here: they are counted
//! by the transactions that hold them, not by the pool.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static STATEMENTS: Cell<u32>;
}

/// Runs `fut` with its own statement counter; returns its output and the
/// number of statements it sent.
pub async fn counted<F: Future>(fut: F) -> (F::Output, u32) {
    STATEMENTS
        .scope(Cell::new(0), async move {
            let out = fut.await;
            (out, STATEMENTS.with(Cell::get))
        })
        .await
}

/// One statement ran (called by the pool, on the task that sent it).
pub(super) fn seen() {
    let _ = STATEMENTS.try_with(|c| c.set(c.get().saturating_add(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statements_count_inside_the_scope_only() {
        seen(); // outside any request: ignored, no panic
        let ((), n) = counted(async {
            seen();
            seen();
        })
        .await;
        assert_eq!(n, 2);
        let ((), n) = counted(async {}).await;
        assert_eq!(n, 0);
    }
}
