//! Start-up of a function binary: a configuration error ends the process with one human
//! sentence on stderr (the error's `Display`: the variable and the fix) and exit status 1,
//! instead of the Rust `Debug` form (`Missing { var: ..., hint: ... }`) that returning the
//! error from `main` prints.
//!
//! ```no_run
//! # async fn from_env() -> Result<(), kit::ConfigError> { Ok(()) }
//! # async fn demo() {
//! kit::telemetry::init();
//! let function = kit::start::or_exit("outflow", from_env().await);
//! # }
//! ```

use std::error::Error as StdError;
use std::fmt::Write as _;

/// The sentence printed for a start-up error: `<name>: <error>`, followed by the error's
/// sources (`: <source>`) when its own message does not already carry them.
pub fn sentence(name: &str, error: &(dyn StdError + 'static)) -> String {
    let mut line = format!("{name}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            let _ = write!(line, ": {text}");
        }
        source = cause.source();
    }
    line
}

/// The built function, or the end of the process: on `Err`, logs the error (the JSON log line
/// the platform keeps), prints [`sentence`] on stderr and exits with status 1. Lambda then
/// reports an init error and retries the cold start; locally, `cargo lambda watch` shows the
/// sentence and `cargo lambda invoke` gets the failure instead of waiting.
pub fn or_exit<T, E>(name: &str, built: Result<T, E>) -> T
where
    E: StdError + 'static,
{
    match built {
        Ok(function) => function,
        Err(e) => {
            let line = sentence(name, &e);
            tracing::error!(error = %line, "start-up failed");
            eprintln!("{line}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    #[test]
    fn a_missing_variable_reads_as_one_sentence_with_the_variable_and_the_fix() {
        let e = ConfigError::Missing {
            var: "OUTFLOW_ROUTES",
            hint: "set it to <uplinkParent>=<backend queue URL>",
        };
        let line = sentence("outflow", &e);
        assert_eq!(
            line,
            "outflow: environment variable OUTFLOW_ROUTES is not set; set it to <uplinkParent>=<backend queue URL>"
        );
        assert!(!line.contains('\n') && !line.contains("Missing {"));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the key set")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn sources_are_appended_once() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            sentence("token", &e),
            "token: cannot read the key set: connection refused"
        );
    }
}
