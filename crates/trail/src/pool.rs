//! Threads that deflate log-file chunks for every trail's batches.
//!
//! A file's chunks are independent once cut: each is deflated from its own
//! text and the [`WINDOW_BYTES`](crate::batch) before it, so any thread can
//! deflate any chunk and the pieces, put back in order, form one DEFLATE
//! stream of the same content a single compressor writes (its bytes can
//! differ slightly: see the crate's notes on determinism). Without the pool
//! one trail's files are deflated on its sink's one thread, which then limits
//! a trail's delivery rate to one core while the others wait; with it, the
//! chunks of one trail spread over the machine.
//!
//! The queue is short (one job per thread): when it is full, the batch
//! deflates the chunk itself on the caller's thread rather than wait, so a
//! busy pool never stalls a sink, and memory stays bounded by the threads
//! and the queue, not by how far the pool is behind.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::batch::Deflater;

/// A chunk to deflate.
pub(crate) struct Job {
    /// gzip level, 0–9.
    pub(crate) level: u32,
    /// The dictionary (`primed` bytes), then the chunk.
    pub(crate) text: Vec<u8>,
    /// How many leading bytes of `text` are the dictionary.
    pub(crate) primed: usize,
    /// Where the deflated piece goes.
    pub(crate) reply: mpsc::Sender<Vec<u8>>,
}

impl Job {
    /// Deflates the chunk (never the stream's last: the batch finishes that).
    pub(crate) fn run(&self, deflater: &mut Deflater) -> Vec<u8> {
        let (dictionary, input) = self.text.split_at(self.primed);
        let mut out = Vec::new();
        deflater.deflate(dictionary, input, false, &mut out);
        out
    }
}

/// A set of threads that deflate chunks of log files, shared by every
/// trail's [`LogBatches`](crate::LogBatches). Cloning shares the threads;
/// they end when the last clone is dropped.
#[derive(Clone)]
pub struct DeflatePool {
    jobs: SyncSender<Job>,
    threads: usize,
}

impl std::fmt::Debug for DeflatePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflatePool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl DeflatePool {
    /// Starts `threads` threads (at least one), named `cairn-deflate-N`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("cairn-deflate-{n}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs, threads })
    }

    /// Queues a job, or gives it back when the queue is full (the caller
    /// deflates it then) or the threads are gone.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    let mut deflater: Option<Deflater> = None;
    loop {
        // One thread waits in `recv` holding the lock, the others on the lock:
        // jobs are whole chunks, so the hand-off is rare next to the work.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else {
            return; // every sender is gone
        };
        let deflater = match &mut deflater {
            Some(d) if d.level() == job.level => d,
            slot => slot.insert(Deflater::new(job.level)),
        };
        let piece = job.run(deflater);
        // The batch may have been dropped meanwhile (a deleted trail): nothing to do.
        let _ = job.reply.send(piece);
    }
}
