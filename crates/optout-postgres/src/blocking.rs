//! Where the synchronous client may block. `postgres::Client` drives its connection with a
//! runtime of its own and panics when blocked on inside another tokio runtime, which is
//! where the server's request handlers run. The ledger is called like the SQLite one, so
//! each call checks: outside a runtime it runs as is; on a multi-threaded runtime's worker
//! it runs under `block_in_place` (the worker hands its tasks to another thread and leaves
//! the runtime's context meanwhile); on a current-thread runtime it is refused with an
//! error (there is no other thread to hand tasks to), never a panic.

use optout_store::StoreError;
use tokio::runtime::{Handle, RuntimeFlavor};

pub(crate) fn blocking<T, E: From<StoreError>>(
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    match Handle::try_current() {
        Err(_) => work(),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        Ok(_) => Err(E::from(StoreError::Backend(
            "the PostgreSQL ledger was called on a current-thread tokio runtime, where it \
             cannot block; call it from tokio::task::spawn_blocking or a multi-threaded runtime"
                .into(),
        ))),
    }
}

/// Drops a connection where closing it may block: on a thread of its own when inside a
/// runtime (closing sends a Terminate message through the client's runtime).
pub(crate) fn drop_client(client: postgres::Client) {
    if Handle::try_current().is_err() {
        drop(client);
    } else {
        let _ = std::thread::Builder::new()
            .name("optout-postgres-close".into())
            .spawn(move || drop(client));
    }
}
