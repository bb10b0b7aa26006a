//! Blocking work (SQLite, file IO, LTX encoding) off the async threads, with one rule
//! for a panic in it: the caller gets an error naming the work ("the snapshot task
//! panicked") instead of a second panic that takes its whole task down.

use crate::error::Error;

/// Blocking work that panicked (or was cancelled at runtime shutdown). Each error
/// type that blocking work returns converts from it, beside its own definition.
#[derive(Debug)]
pub(crate) struct Panicked {
    what: &'static str,
    cancelled: bool,
}

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.cancelled {
            "was cancelled"
        } else {
            "panicked"
        };
        write!(f, "the {} task {how}", self.what)
    }
}

impl From<Panicked> for Error {
    fn from(p: Panicked) -> Error {
        Error::Internal(p.to_string())
    }
}

/// Runs `f` on tokio's blocking pool. `what` names the work in the error a panic
/// becomes.
pub(crate) async fn blocking<T, E>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Panicked> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(Panicked {
            what,
            cancelled: join.is_cancelled(),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_naming_the_work() {
        let r: Result<(), Error> = blocking("snapshot", || panic!("boom")).await;
        match r {
            Err(Error::Internal(m)) => assert_eq!(m, "the snapshot task panicked"),
            other => panic!("{other:?}"),
        }
        let ok: Result<u8, Error> = blocking("open", || Ok(7)).await;
        assert_eq!(ok.unwrap(), 7);
    }
}
