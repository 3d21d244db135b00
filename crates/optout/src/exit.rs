//! Exit codes and the error type that carries one.

use std::fmt;

/// A check (verification, signature) failed.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Bad usage or bad input: nothing was changed.
pub const EXIT_BAD_INPUT: u8 = 2;

/// An error with the exit code it should end the process with.
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    pub fn display_chain(&self) -> String {
        format!("{:#}", self.error)
    }
}

impl fmt::Debug for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}: {:#}", self.code, self.error)
    }
}

/// Bad input (exit 2).
pub fn bad_input(error: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: EXIT_BAD_INPUT,
        error: error.into(),
    }
}

/// A failed check (exit 1).
pub fn check_failed(error: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: EXIT_CHECK_FAILED,
        error: error.into(),
    }
}

/// Anything else that went wrong (storage, I/O): exit 1.
impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError {
            code: EXIT_CHECK_FAILED,
            error,
        }
    }
}

/// Storage errors: a rejected request is the caller's bad input; the rest are failures.
impl From<optout_store::StoreError> for CliError {
    fn from(error: optout_store::StoreError) -> Self {
        use optout_store::StoreError;
        let code = match error {
            StoreError::Rejected(_) | StoreError::IdempotencyConflict { .. } => EXIT_BAD_INPUT,
            _ => EXIT_CHECK_FAILED,
        };
        CliError {
            code,
            error: error.into(),
        }
    }
}

/// Adds context to any error, keeping its exit code.
pub trait Context<T> {
    fn context_bad_input(self, message: impl fmt::Display) -> CliResult<T>;
}

impl<T, E: Into<anyhow::Error>> Context<T> for Result<T, E> {
    fn context_bad_input(self, message: impl fmt::Display) -> CliResult<T> {
        self.map_err(|error| bad_input(error.into().context(message.to_string())))
    }
}
