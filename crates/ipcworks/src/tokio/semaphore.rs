//! The native semaphore's async form.

use std::os::fd::AsFd;
use std::sync::Arc;

use super::Notifier;
use crate::sync::{Permit, Semaphore};
use crate::waitset::Object;
use crate::{Error, Result};

struct Inner {
    sem: Semaphore,
    notifier: Notifier,
    /// Of this process's tasks waiting, the one holding the gate waits on
    /// the helper; the others wait for the gate, first come first served.
    gate: ::tokio::sync::Mutex<()>,
}

/// The async form of a native [`Semaphore`]: `sem.acquire().await`.
///
/// Cheap to clone, and meant to be: clones share one helper thread, one
/// eventfd and one gate (see the [module docs](super)), so 10,000 tasks
/// awaiting one semaphore cost one thread, and a post wakes one of them.
/// Cancel-safe: a permit is taken only by the `try_acquire`/`try_wait` of
/// the poll that returns it; a cancelled acquire takes none.
///
/// ```no_run
/// use ipcworks::sync::Semaphore;
/// use ipcworks::tokio::AsyncSemaphore;
///
/// # async fn run() -> ipcworks::Result<()> {
/// let sem = AsyncSemaphore::new(Semaphore::open_or_create("slots", 8)?.0)?;
/// for _ in 0..100 {
///     let sem = sem.clone();
///     tokio::spawn(async move {
///         let _permit = sem.acquire().await?; // at most 8 inside, all processes together
///         // … work …
///         Ok::<_, ipcworks::Error>(())
///     });
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncSemaphore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AsyncSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSemaphore")
            .field("name", &self.inner.sem.name())
            .finish()
    }
}

/// `Some(v)` for a success, `None` for "no permit now".
fn hit<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::WouldBlock) => Ok(None),
        Err(e) => Err(e),
    }
}

impl AsyncSemaphore {
    /// Makes `sem` awaitable: starts its helper thread (asleep until an
    /// acquire finds no permit), which maps the semaphore once more. Must
    /// be called inside a tokio runtime.
    pub fn new(sem: Semaphore) -> Result<AsyncSemaphore> {
        super::in_runtime()?;
        let fd = sem
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", e))?;
        let notifier = Notifier::new(Object::Semaphore(Semaphore::from_fd(fd)?))?;
        Ok(AsyncSemaphore {
            inner: Arc::new(Inner {
                sem,
                notifier,
                gate: ::tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The semaphore (`post`, `value`, `try_acquire`, …).
    pub fn get_ref(&self) -> &Semaphore {
        &self.inner.sem
    }

    /// Retries `attempt` until it hits, parking on the helper in between.
    async fn until<T>(&self, mut attempt: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        let _leader = self.inner.gate.lock().await;
        loop {
            if let Some(v) = attempt()? {
                return Ok(v);
            }
            self.inner.notifier.ready().await?;
        }
    }

    /// Takes a permit as a [`Permit`] guard (recorded under this process:
    /// it comes back if the process dies), waiting asynchronously while
    /// there is none ([`Semaphore::acquire`]). Cancel-safe.
    pub async fn acquire(&self) -> Result<Permit<'_>> {
        let sem = &self.inner.sem;
        self.until(|| hit(sem.try_acquire())).await
    }

    /// P: takes a permit, not tracked (give it back with
    /// [`post`](Semaphore::post)), waiting asynchronously while there is
    /// none ([`Semaphore::wait`]). Cancel-safe.
    #[doc(alias = "sem_wait")]
    pub async fn wait(&self) -> Result<()> {
        let sem = &self.inner.sem;
        self.until(|| hit(sem.try_wait())).await
    }

    /// V: gives a permit back ([`Semaphore::post`]).
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        self.inner.sem.post()
    }
}
