//! The event history feed: a sink (consumer `history`) that puts every
//! management event in the event history (`cairn_history`), where
//! LookupEvents finds it by its attributes for 90 days.
//!
//! Events are keyed by eventID, so a WAL range fed again after a crash
//! stores nothing twice and deliveries are not announced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use cairn_history::{History, HistoryEvent};
use cairn_model::record::UserIdentityView;
use cairn_wal::Lsn;

use crate::route::{Item, RecordEntry, Routed};
use crate::runtime::{Accept, Applied, Report, Sink, SinkError};

/// The WAL consumer name of the event history feed.
pub const HISTORY_CONSUMER: &str = "history";

/// How long the first waiting event waits for others.
const FLUSH_DELAY: Duration = Duration::from_secs(1);
/// Deliver early past this many waiting events.
const MAX_PENDING: usize = 2_000;
/// How often events past the retention are removed.
const EXPIRY_PERIOD: Duration = Duration::from_secs(3600);

/// A delivery: the WAL position it ends at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryIntent {
    /// Where the delivered records end.
    pub to: Lsn,
}

/// The `Username` event history shows for an identity: an IAM user's name,
/// `root`, an assumed role's session name, the service that acted.
fn username(identity: &UserIdentityView<'_>) -> Option<String> {
    match identity.identity_type.as_deref() {
        Some("Root") => Some("root".to_owned()),
        Some("AssumedRole") => identity
            .arn
            .as_deref()
            .and_then(|arn| arn.rsplit('/').next())
            .map(str::to_owned),
        Some("AWSService") => identity.invoked_by.as_deref().map(str::to_owned),
        _ => identity
            .user_name
            .as_deref()
            .or(identity.principal_id.as_deref())
            .map(str::to_owned),
    }
}

/// The event history's entry for a record, if it is a management event
/// with an eventID, a time, an account and a region.
fn history_event(entry: &RecordEntry) -> Option<HistoryEvent> {
    let view = entry.view()?;
    let management = match view.event_category.as_deref() {
        None | Some("Management") => view.management_event != Some(false),
        Some(_) => false,
    };
    if !management {
        return None;
    }
    let json = std::str::from_utf8(entry.json()).ok()?;
    // The stored view holds the identity's fields: no parse of the JSON.
    let identity = view.user_identity.as_ref();
    Some(HistoryEvent {
        event_id: view.event_id.as_deref()?.to_owned(),
        account: view.recipient_account_id.as_deref()?.to_owned(),
        region: view.aws_region.as_deref()?.to_owned(),
        event_time_ms: entry.event_time?.timestamp_millis(),
        event_name: view.event_name.as_deref().map(str::to_owned),
        read_only: view.read_only.map(|r| r.to_string()),
        username: identity.and_then(username),
        event_source: view.event_source.as_deref().map(str::to_owned),
        access_key_id: identity
            .and_then(|i| i.access_key_id.as_deref())
            .map(str::to_owned),
        resources: view
            .resources
            .iter()
            .flatten()
            .filter_map(|r| {
                Some((
                    r.resource_type.as_deref()?.to_owned(),
                    r.arn.as_deref()?.to_owned(),
                ))
            })
            .collect(),
        record: json.to_owned(),
    })
}

/// The event history feed.
pub struct HistorySink {
    history: Arc<History>,
    pending: Vec<HistoryEvent>,
    first_pending: Option<Instant>,
    next_expiry: Instant,
}

impl std::fmt::Debug for HistorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySink").finish_non_exhaustive()
    }
}

impl HistorySink {
    /// A feed into `history`.
    pub fn new(history: Arc<History>) -> Self {
        Self {
            history,
            pending: Vec::new(),
            first_pending: None,
            next_expiry: Instant::now(),
        }
    }
}

fn store_error(e: cairn_history::Error) -> SinkError {
    if e.is_retriable() {
        SinkError::retriable(e.to_string())
    } else {
        SinkError::permanent(e.to_string())
    }
}

impl Sink for HistorySink {
    type State = ();
    type Intent = HistoryIntent;
    // Keyed by eventID: a replay stores nothing twice.
    const ANNOUNCES: bool = false;

    fn name(&self) -> &str {
        HISTORY_CONSUMER
    }

    fn accept(&mut self, entry: &Routed) -> Accept {
        let Item::Record(record) = &entry.item else {
            return Accept::Skip;
        };
        let Some(event) = history_event(record) else {
            return Accept::Skip;
        };
        self.pending.push(event);
        self.first_pending.get_or_insert_with(Instant::now);
        Accept::Buffered
    }

    fn apply(&mut self, _entry: &Routed) -> Result<Applied, SinkError> {
        Ok(Applied::Continue)
    }

    fn intent_end(intent: &HistoryIntent) -> Lsn {
        intent.to
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn full(&self) -> bool {
        self.pending.len() >= MAX_PENDING
    }

    fn flush_due(&self) -> Option<Instant> {
        self.first_pending.map(|t| t + FLUSH_DELAY)
    }

    fn plan(&mut self, to: Lsn) -> Result<HistoryIntent, SinkError> {
        Ok(HistoryIntent { to })
    }

    fn deliver(&mut self, _intent: &HistoryIntent, _recovering: bool) -> Result<(), SinkError> {
        self.history.record(&self.pending).map_err(store_error)?;
        self.pending.clear();
        self.first_pending = None;
        Ok(())
    }

    fn state(&self) {}

    fn report(&mut self, report: Report<'_>) {
        if let Report::Failed { error, .. } = report {
            tracing::warn!(error = %error, "cannot record the event history");
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        Some(self.next_expiry)
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        let now = chrono::Utc::now().timestamp_millis();
        self.history
            .expire(now - cairn_history::RETENTION_MS)
            .map_err(store_error)?;
        self.next_expiry = Instant::now() + EXPIRY_PERIOD;
        Ok(())
    }
}
