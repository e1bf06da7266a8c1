//! Database threads. Each backend connection lives on a thread of its own; the async side
//! hands a closure to a thread and awaits its answer, so a whole unit of work (a read, or a
//! commit batch with all its statements) costs one hand-off, not one per statement.
//!
//! SQLite gets one writer thread (SQLite has one writer at a time; queuing writes in
//! process is cheaper than contending for its lock) and a few reader threads (WAL lets reads
//! run beside the writer). PostgreSQL gets one pool of threads for both. Threads are started
//! on demand up to the pool's size, connect lazily, and reconnect after a broken connection.

use crate::sql::{Conn, Dialect};
use crate::{Result, StoreError};
use crossbeam_channel::{Receiver, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A connection owned by a database thread.
pub(crate) trait WorkerConn: Conn + Send {
    /// Whether the connection can no longer be used (it is then replaced).
    fn is_broken(&self) -> bool;
    /// Whether a transaction is open (a job that returned without ending its transaction
    /// leaves it to be rolled back).
    fn in_transaction(&self) -> bool;
}

/// Opens connections for a pool.
pub(crate) trait Connector: Send + Sync + 'static {
    fn connect(&self) -> Result<Box<dyn WorkerConn>>;
}

type Job = Box<dyn FnOnce(Result<&mut dyn Conn>) + Send>;

/// A set of database threads sharing one queue.
struct Pool {
    name: &'static str,
    jobs: Sender<Job>,
    receiver: Receiver<Job>,
    connector: Arc<dyn Connector>,
    max: usize,
    threads: AtomicUsize,
    idle: Arc<AtomicUsize>,
}

impl Pool {
    fn new(name: &'static str, connector: Arc<dyn Connector>, max: usize) -> Pool {
        let (jobs, receiver) = crossbeam_channel::unbounded();
        Pool {
            name,
            jobs,
            receiver,
            connector,
            max: max.max(1),
            threads: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn submit(&self, job: Job) -> Result<()> {
        if self.idle.load(Ordering::Acquire) == 0 {
            self.grow();
        }
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database threads have stopped".into()))
    }

    /// Starts another thread unless the pool is full.
    fn grow(&self) {
        let mut n = self.threads.load(Ordering::Acquire);
        loop {
            if n >= self.max {
                return;
            }
            match self
                .threads
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => n = actual,
            }
        }
        let receiver = self.receiver.clone();
        let connector = self.connector.clone();
        let idle = self.idle.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tsunagu-db-{}-{n}", self.name))
            .spawn(move || worker(receiver, connector, idle));
        if let Err(e) = spawned {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %e, "cannot start a database thread");
        }
    }
}

fn worker(jobs: Receiver<Job>, connector: Arc<dyn Connector>, idle: Arc<AtomicUsize>) {
    let mut conn: Option<Box<dyn WorkerConn>> = None;
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = jobs.recv();
        idle.fetch_sub(1, Ordering::AcqRel);
        let Ok(job) = job else {
            // Every sender is gone: the store was dropped.
            return;
        };
        if conn.as_ref().is_some_and(|c| c.is_broken()) {
            conn = None;
        }
        if conn.is_none() {
            match connector.connect() {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(e));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // A panic in a job must not take the thread (and its queue) down; its caller sees
        // the dropped answer as an error.
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(c.as_mut() as &mut dyn Conn))));
        if outcome.is_err() {
            tracing::error!("a database job panicked; its connection is replaced");
            conn = None;
            continue;
        }
        if c.in_transaction() {
            tracing::error!("a database job left a transaction open; rolling it back");
            if c.rollback().is_err() {
                conn = None;
            }
        }
    }
}

/// The handle on a database: where reads and writes run.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    dialect: Dialect,
    readers: Pool,
    /// `None` when writes share the readers' pool (PostgreSQL).
    writer: Option<Pool>,
}

impl Database {
    pub(crate) fn new(
        dialect: Dialect,
        connector: Arc<dyn Connector>,
        readers: usize,
        separate_writer: bool,
    ) -> Database {
        Database {
            inner: Arc::new(Inner {
                dialect,
                readers: Pool::new("read", connector.clone(), readers),
                writer: separate_writer.then(|| Pool::new("write", connector, 1)),
            }),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    async fn run<T, F>(&self, pool: &Pool, f: F) -> Result<T>
    where
        F: FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        pool.submit(Box::new(move |conn| {
            let _ = reply.send(conn.and_then(f));
        }))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("a database job did not answer".into()))?
    }

    /// Runs `f` on a reading connection (no transaction unless `f` opens one).
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(&self.inner.readers, f).await
    }

    /// Runs `f` on the writing connection, outside a transaction (each statement commits on
    /// its own).
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.inner.writer.as_ref().unwrap_or(&self.inner.readers);
        self.run(pool, f).await
    }

    /// Makes sure rows deleted or overwritten so far leave no copy in the database's files:
    /// on SQLite (where `secure_delete` zeroes freed content) the write-ahead log is
    /// checkpointed into the main file and truncated, so the old page images it held are
    /// gone; PostgreSQL's dumps never carry dead rows, and `VACUUM` there is the operator's
    /// schedule. Used after an erasure (SPEC §9).
    pub async fn flush_deleted(&self) -> Result<()> {
        if self.dialect() != Dialect::Sqlite {
            return Ok(());
        }
        // The checkpoint answers (busy, log frames, checkpointed frames); busy = 1 means a
        // reader held it back: try again a few times, then say so.
        for attempt in 0..20 {
            let busy = self
                .write(|c| {
                    let row = c
                        .query_opt("PRAGMA wal_checkpoint(TRUNCATE)", &[])?
                        .ok_or_else(|| {
                            StoreError::Database("wal_checkpoint answered nothing".into())
                        })?;
                    row.reader().int()
                })
                .await?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 * (attempt + 1))).await;
        }
        Err(StoreError::Unavailable(
            "the write-ahead log could not be checkpointed: readers held it; deleted rows may remain in tsunagu.db-wal until the next checkpoint".into(),
        ))
    }

    /// Runs `f` in a write transaction: committed when `f` returns `Ok`, rolled back
    /// otherwise.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write(move |conn| crate::sql::in_transaction(conn, f))
            .await
    }
}
