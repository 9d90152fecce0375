//! Sending batches with bounded concurrency and tallying the answers.
//!
//! Each batch is sent by its own task (so requests progress while the caller
//! reads input or waits for its rate schedule); at most `limit` are in flight.
//! The first batch that fails as a whole (after the client's retries) stops
//! the run: dropping the dispatcher aborts the batches still in flight.

use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::batch::Batch;
use crate::client::{IngestClient, IngestResponse};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// One record that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordFailure {
    /// The record's position in the input (from 0, counting every record read).
    pub index: u64,
    /// The server's error code (`FieldNotFound`, `InvalidRecipient`, ...), or a
    /// local one for records never sent: `InvalidData` (not JSON, not UTF-8),
    /// `RecordTooLarge` (cannot fit in a request).
    pub error_code: String,
    /// The message.
    pub error_message: String,
}

struct Completed {
    indices: Vec<u64>,
    latency: Duration,
    result: Result<IngestResponse>,
}

/// Counts and kept details.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) accepted: u64,
    pub(crate) failed: u64,
    pub(crate) batches: u64,
    pub(crate) failures_by_code: BTreeMap<String, u64>,
    /// The failures with the lowest indices, at most `max_details` (a max-heap,
    /// so the highest kept is dropped first): deterministic whatever the order
    /// in which answers arrive.
    details: BinaryHeap<RecordFailure>,
    max_details: usize,
    pub(crate) latencies: Vec<Duration>,
}

impl Tally {
    fn fail(&mut self, failure: RecordFailure) {
        self.failed += 1;
        *self
            .failures_by_code
            .entry(failure.error_code.clone())
            .or_insert(0) += 1;
        if self.max_details == 0 {
            return;
        }
        if self.details.len() < self.max_details {
            self.details.push(failure);
        } else if self
            .details
            .peek()
            .is_some_and(|worst| failure.index < worst.index)
        {
            self.details.pop();
            self.details.push(failure);
        }
    }

    /// The kept failures, by index.
    pub(crate) fn take_failures(&mut self) -> Vec<RecordFailure> {
        std::mem::take(&mut self.details).into_sorted_vec()
    }
}

/// Sends batches, at most `limit` at a time.
pub(crate) struct Dispatcher<'p> {
    client: IngestClient,
    limit: usize,
    tasks: JoinSet<Completed>,
    progress: &'p dyn Progress,
    pub(crate) tally: Tally,
}

impl<'p> Dispatcher<'p> {
    pub(crate) fn new(
        client: IngestClient,
        limit: usize,
        progress: &'p dyn Progress,
        max_failure_details: usize,
    ) -> Self {
        Self {
            client,
            limit: limit.max(1),
            tasks: JoinSet::new(),
            progress,
            tally: Tally {
                max_details: max_failure_details,
                ..Tally::default()
            },
        }
    }

    /// Starts sending `batch`, first waiting for a free slot.
    pub(crate) async fn submit(&mut self, batch: Batch) -> Result<()> {
        while self.tasks.len() >= self.limit {
            self.complete_one().await?;
        }
        let client = self.client.clone();
        self.tasks.spawn(async move {
            let started = Instant::now();
            let result = client.send_body(batch.body).await;
            Completed {
                indices: batch.indices,
                latency: started.elapsed(),
                result,
            }
        });
        Ok(())
    }

    /// A record refused before sending.
    pub(crate) fn local_failure(&mut self, failure: RecordFailure) {
        self.tally.fail(failure);
        self.progress.add_done(1);
    }

    /// Waits for the next batch to finish (`Ok(false)` when none is in flight).
    pub(crate) async fn complete_one(&mut self) -> Result<bool> {
        match self.tasks.join_next().await {
            None => Ok(false),
            Some(joined) => self.handle(joined).map(|()| true),
        }
    }

    /// Waits for every batch in flight.
    pub(crate) async fn drain(&mut self) -> Result<()> {
        while self.complete_one().await? {}
        Ok(())
    }

    /// Sleeps until `deadline`, taking in answers meanwhile.
    pub(crate) async fn wait_until(&mut self, deadline: Instant) -> Result<()> {
        loop {
            if self.tasks.is_empty() {
                tokio::time::sleep_until(deadline).await;
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Ok(()),
                joined = self.tasks.join_next() => {
                    if let Some(joined) = joined {
                        self.handle(joined)?;
                    }
                }
            }
        }
    }

    fn handle(&mut self, joined: Result<Completed, JoinError>) -> Result<()> {
        let completed = joined.map_err(|e| Error::Task(format!("send task: {e}")))?;
        let response = completed.result?;
        let count = completed.indices.len() as u64;
        let refused = response.failed.len() as u64;
        for failed in response.failed {
            let index = completed
                .indices
                .get(failed.index)
                .copied()
                .ok_or_else(|| Error::InvalidResponse {
                    url: self.client.url().to_owned(),
                    reason: format!("failure index {} in a batch of {count}", failed.index),
                })?;
            self.tally.fail(RecordFailure {
                index,
                error_code: failed.error_code,
                error_message: failed.error_message,
            });
        }
        if response.accepted + refused != count {
            tracing::warn!(
                batch = count,
                accepted = response.accepted,
                refused,
                "ingest answer does not account for every record"
            );
        }
        self.tally.sent += count;
        self.tally.accepted += response.accepted;
        self.tally.batches += 1;
        self.tally.latencies.push(completed.latency);
        self.progress.add_done(count);
        Ok(())
    }

    /// Waits for `item` while taking in answers: returns `Next::Item` with its
    /// output, or `Next::Answered` after handling an answer (`item` is then
    /// dropped, so it must be cancel-safe, like `mpsc::Receiver::recv`).
    pub(crate) async fn next_or<T>(&mut self, item: impl Future<Output = T>) -> Result<Next<T>> {
        if self.tasks.is_empty() {
            return Ok(Next::Item(item.await));
        }
        tokio::select! {
            value = item => Ok(Next::Item(value)),
            joined = self.tasks.join_next() => {
                if let Some(joined) = joined {
                    self.handle(joined)?;
                }
                Ok(Next::Answered)
            }
        }
    }
}

/// What [`Dispatcher::next_or`] saw first.
pub(crate) enum Next<T> {
    /// The awaited item.
    Item(T),
    /// A batch's answer (already tallied).
    Answered,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(index: u64) -> RecordFailure {
        RecordFailure {
            index,
            error_code: if index.is_multiple_of(2) {
                "Even"
            } else {
                "Odd"
            }
            .to_owned(),
            error_message: String::new(),
        }
    }

    #[test]
    fn test_tally_keeps_lowest_indices_whatever_the_order() {
        let mut tally = Tally {
            max_details: 3,
            ..Tally::default()
        };
        for i in [9, 2, 7, 0, 5, 1, 8] {
            tally.fail(failure(i));
        }
        assert_eq!(tally.failed, 7);
        assert_eq!(tally.failures_by_code["Odd"], 4);
        assert_eq!(tally.failures_by_code["Even"], 3);
        let kept: Vec<u64> = tally.take_failures().iter().map(|f| f.index).collect();
        assert_eq!(kept, [0, 1, 2]);
    }
}
