//! The running CEL evaluation's cost meter, shared by the evaluator (`cel.rs`, which sets it
//! around each expression) and the Kubernetes library functions (`cel_library`, which charge
//! it for work that grows with their input), so neither imports the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The function that wraps an operand whose size is charged (see `cel.rs`); also the function
/// an over-limit error names.
pub(super) const COST_ARG_FN: &str = "@wardle_cost_arg";
/// Go's message when one expression exceeds `PER_CALL_LIMIT`.
pub(super) const CALL_LIMIT_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

thread_local! {
    /// The running evaluation's meter and limit (`Activation::eval` sets them): CEL evaluates
    /// on the calling thread, and the environment's overloads, unlike the context's
    /// functions, see no per-evaluation state.
    pub(super) static ARG_METER: std::cell::RefCell<Option<(Arc<AtomicU64>, u64)>> =
        const { std::cell::RefCell::new(None) };
}

/// Add `cost` to the running evaluation's meter; an error once it passes the limit.
pub(super) fn charge(cost: u64) -> Result<(), cel::ExecutionError> {
    ARG_METER.with_borrow(|m| match m {
        Some((spent, limit))
            if spent
                .fetch_add(cost, Ordering::Relaxed)
                .saturating_add(cost)
                > *limit =>
        {
            Err(cel::ExecutionError::function_error(
                COST_ARG_FN,
                CALL_LIMIT_EXCEEDED,
            ))
        }
        _ => Ok(()),
    })
}
