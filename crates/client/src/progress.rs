//! Progress reporting, decoupled from any terminal library.
//!
//! The library never prints. It reports through [`Progress`]; the binary
//! passes an `indicatif::ProgressBar` (implemented here) or [`NoProgress`].

/// Receives progress as records are discovered and answered.
///
/// Calls come from the task driving the work, in order, and must be cheap.
pub trait Progress: Send + Sync {
    /// `records` more records are known to be coming (a whole document was
    /// read, or loadgen's count is fixed). Never called for streamed input
    /// whose size is unknown.
    fn add_total(&self, records: u64) {
        let _ = records;
    }

    /// `records` more records are done: answered by the server (accepted or
    /// refused) or refused locally (not JSON, too large).
    fn add_done(&self, records: u64);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn add_done(&self, _records: u64) {}
}

impl Progress for indicatif::ProgressBar {
    fn add_total(&self, records: u64) {
        // A bar created without a length is a spinner; the first total turns it into a bar.
        match self.length() {
            Some(_) => self.inc_length(records),
            None => self.set_length(records),
        }
    }

    fn add_done(&self, records: u64) {
        self.inc(records);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Counts what it is told, for assertions.
    #[derive(Debug, Default)]
    pub(crate) struct Counting {
        pub(crate) total: AtomicU64,
        pub(crate) done: AtomicU64,
    }

    impl Progress for Counting {
        fn add_total(&self, records: u64) {
            self.total.fetch_add(records, Ordering::Relaxed);
        }

        fn add_done(&self, records: u64) {
            self.done.fetch_add(records, Ordering::Relaxed);
        }
    }

    #[test]
    fn test_progress_bar_grows_its_length() {
        let bar = indicatif::ProgressBar::hidden();
        assert_eq!(bar.length(), None);
        bar.add_total(10);
        bar.add_total(5);
        bar.add_done(3);
        assert_eq!(bar.length(), Some(15));
        assert_eq!(bar.position(), 3);
    }
}
