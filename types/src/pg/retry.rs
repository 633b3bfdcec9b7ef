//! Which database failures are worth retrying, and how long to wait.

use std::time::Duration;

use tokio_postgres::error::SqlState;

/// True when the same statement may succeed if tried again later: the
/// connection broke, the server is starting or shutting down, or it lost a
/// race (serialization, deadlock, lock timeout). Data and schema errors are
/// final: retrying them only repeats the failure.
pub fn is_retryable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: the failure is in the connection (I/O, TLS, protocol).
        None => true,
        Some(code) => is_retryable_sqlstate(code),
    }
}

fn is_retryable_sqlstate(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    matches!(
        class,
        "08" // connection exception
        | "53" // insufficient resources (disk full, out of memory, too many connections)
        | "57" // operator intervention (shutdown, cannot connect now, query cancelled)
        | "58" // system error (I/O)
    ) || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
}

/// Exponential backoff from 50 ms, doubling, capped at 5 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 50u64.saturating_mul(1 << attempt.min(7));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_operator_classes_are_retryable() {
        for code in [
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::LOCK_NOT_AVAILABLE,
        ] {
            assert!(is_retryable_sqlstate(&code), "{code:?}");
        }
    }

    #[test]
    fn data_and_schema_errors_are_final() {
        for code in [
            SqlState::INVALID_TEXT_REPRESENTATION,
            SqlState::UNIQUE_VIOLATION,
            SqlState::UNDEFINED_TABLE,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::CHECK_VIOLATION,
        ] {
            assert!(!is_retryable_sqlstate(&code), "{code:?}");
        }
    }

    #[test]
    fn backoff_grows_then_caps() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
