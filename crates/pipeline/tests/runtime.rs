//! The consumer runtime with a test sink: retries, parking on permanent
//! errors, backoff bounds, intent replay after a crash, a sink that stays
//! behind while another advances, and the quarantine (a part the store
//! refuses for good set aside, the rest delivered, exactly once across a
//! crash at any point of it).

// Test helpers panic on failure by design: a panic is the test failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use cairn_pipeline::envelope::encode_record;
use cairn_pipeline::quarantine::{self, Quarantine};
use cairn_pipeline::route::{Hub, Item, Routed};
use cairn_pipeline::runtime::{
    Accept, Applied, Backoff, Consumer, ErrorKind, Report, RetryPolicy, RuntimeContext, Signal,
    Sink, SinkError, SinkExit, decode_checkpoint,
};
use cairn_wal::{Lsn, Wal, WalConfig};

/// What the test sink's "bucket" holds: key → bytes, and how often each key was written.
#[derive(Default)]
struct Bucket {
    objects: BTreeMap<String, Vec<u8>>,
    writes: BTreeMap<String, usize>,
}

/// Shared knobs and observations of a test sink.
#[derive(Default)]
struct Probe {
    bucket: Mutex<Bucket>,
    /// Outcomes to return before each write, in order (then Ok).
    script: Mutex<VecDeque<SinkError>>,
    /// While set, every write fails retriably (an outage).
    outage: Mutex<bool>,
    /// Panic (a crash) after this many successful writes.
    crash_after_writes: Mutex<Option<usize>>,
    writes: AtomicUsize,
    attempts: AtomicUsize,
    /// (kind, retry_in) of every failure report.
    failures: Mutex<Vec<(ErrorKind, Option<Duration>)>>,
    delivered_reports: AtomicUsize,
    /// Records delivered, in order.
    delivered: Mutex<Vec<String>>,
    /// Groups whose object key the "store" refuses for good.
    refused: Mutex<BTreeSet<String>>,
    /// Panic (a crash) when asked to set a part aside.
    crash_in_set_aside: Mutex<bool>,
    /// (part, records) of every quarantine report.
    quarantined: Mutex<Vec<(String, usize)>>,
    /// How long each delivery takes (a sink writing files and syncing them).
    pause: Mutex<Duration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Intent {
    to: Lsn,
    keys: Vec<(String, String)>,
}

/// Gathers records by eventName; delivers one object per eventName holding
/// the records' JSON, one per line (deterministic in its records).
struct TestSink {
    name: String,
    groups: BTreeMap<String, Vec<String>>,
    started: Option<Instant>,
    interval: Duration,
    probe: Arc<Probe>,
    /// Groups of the delivery in progress set aside.
    set_aside: BTreeSet<String>,
}

impl TestSink {
    fn new(name: &str, probe: Arc<Probe>) -> Self {
        Self {
            name: name.into(),
            groups: BTreeMap::new(),
            started: None,
            interval: Duration::from_millis(20),
            probe,
            set_aside: BTreeSet::new(),
        }
    }
}

fn body(records: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(r.as_bytes());
        out.push(b'\n');
    }
    out
}

impl Sink for TestSink {
    type State = ();
    type Intent = Intent;

    fn name(&self) -> &str {
        &self.name
    }

    fn accept(&mut self, entry: &Routed) -> Accept {
        let Item::Record(record) = &entry.item else {
            return Accept::Skip;
        };
        let Some(name) = record
            .view()
            .and_then(|v| v.event_name.map(|n| n.into_owned()))
        else {
            return Accept::Skip;
        };
        if name == "Poison" {
            return Accept::SetAside("InvalidRecord: cannot be batched".into());
        }
        self.groups
            .entry(name)
            .or_default()
            .push(String::from_utf8(record.json().to_vec()).unwrap());
        self.started.get_or_insert_with(Instant::now);
        Accept::Buffered
    }

    fn apply(&mut self, _entry: &Routed) -> Result<Applied, SinkError> {
        Ok(Applied::Continue)
    }

    fn intent_end(intent: &Intent) -> Lsn {
        intent.to
    }

    fn has_pending(&self) -> bool {
        !self.groups.is_empty()
    }

    fn flush_due(&self) -> Option<Instant> {
        self.started.map(|t| t + self.interval)
    }

    fn plan(&mut self, to: Lsn) -> Result<Intent, SinkError> {
        Ok(Intent {
            to,
            keys: self
                .groups
                .keys()
                .map(|g| (g.clone(), format!("{}/{to}/{g}", self.name)))
                .collect(),
        })
    }

    fn deliver(&mut self, intent: &Intent, recovering: bool) -> Result<(), SinkError> {
        let pause = *self.probe.pause.lock().unwrap();
        std::thread::sleep(pause);
        for (group, key) in &intent.keys {
            if self.set_aside.contains(group) {
                continue;
            }
            self.probe.attempts.fetch_add(1, Ordering::SeqCst);
            // Written before a crash (recovering) or by an earlier attempt.
            let _ = recovering;
            if self.probe.bucket.lock().unwrap().objects.contains_key(key) {
                continue;
            }
            if let Some(e) = self.probe.script.lock().unwrap().pop_front() {
                return Err(e);
            }
            if *self.probe.outage.lock().unwrap() {
                return Err(SinkError::retriable("503 SlowDown"));
            }
            if self.probe.refused.lock().unwrap().contains(group) {
                return Err(SinkError::undeliverable(
                    key.clone(),
                    format!("InvalidObjectKey: the store refuses {key}"),
                ));
            }
            let records = self.groups.get(group).cloned().unwrap_or_default();
            {
                let mut bucket = self.probe.bucket.lock().unwrap();
                bucket.objects.insert(key.clone(), body(&records));
                *bucket.writes.entry(key.clone()).or_default() += 1;
            }
            let n = self.probe.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if *self.probe.crash_after_writes.lock().unwrap() == Some(n) {
                panic!("simulated crash after {n} writes");
            }
        }
        let mut delivered = self.probe.delivered.lock().unwrap();
        for records in std::mem::take(&mut self.groups).into_values() {
            delivered.extend(records);
        }
        self.set_aside.clear();
        self.started = None;
        Ok(())
    }

    fn set_aside(&mut self, intent: &Intent, part: &str) -> Option<Vec<Bytes>> {
        if *self.probe.crash_in_set_aside.lock().unwrap() {
            panic!("simulated crash while setting {part} aside");
        }
        let (group, _) = intent.keys.iter().find(|(_, k)| k == part)?;
        self.set_aside.insert(group.clone());
        let records = self.groups.remove(group).unwrap_or_default();
        Some(records.into_iter().map(Bytes::from).collect())
    }

    fn state(&self) {}

    fn report(&mut self, report: Report<'_>) {
        match report {
            Report::Delivered => {
                self.probe.delivered_reports.fetch_add(1, Ordering::SeqCst);
            }
            Report::Failed {
                error, retry_in, ..
            } => self
                .probe
                .failures
                .lock()
                .unwrap()
                .push((error.kind, retry_in)),
            Report::Quarantined { part, records, .. } => self
                .probe
                .quarantined
                .lock()
                .unwrap()
                .push((part.to_owned(), records)),
        }
    }
}

struct Harness {
    dir: tempfile::TempDir,
    wal: Arc<Wal>,
    ctx: RuntimeContext,
    router: Option<std::thread::JoinHandle<()>>,
    next_id: usize,
}

impl Harness {
    fn new(window_bytes: usize, retry: RetryPolicy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap());
        Self::with_wal(dir, wal, window_bytes, retry)
    }

    fn with_wal(
        dir: tempfile::TempDir,
        wal: Arc<Wal>,
        window_bytes: usize,
        retry: RetryPolicy,
    ) -> Self {
        let hub = Arc::new(Hub::new(wal.oldest_lsn(), window_bytes));
        let ctx = RuntimeContext {
            wal: wal.clone(),
            hub: hub.clone(),
            shutdown: Arc::new(Signal::default()),
            changes: Arc::new(Signal::default()),
            retry,
            quarantine: Arc::new(Quarantine::new(dir.path())),
        };
        let router = {
            let wal = wal.clone();
            std::thread::spawn(move || {
                hub.run_router(&wal, &|_| std::thread::sleep(Duration::from_millis(2)))
            })
        };
        Self {
            dir,
            wal,
            ctx,
            router: Some(router),
            next_id: 0,
        }
    }

    fn append(&mut self, n: usize, names: &[&str]) {
        let payloads: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let i = self.next_id;
                self.next_id += 1;
                let name = names[i % names.len()];
                let json = record_text(i, name);
                let defaults = cairn_model::IngestDefaults {
                    account_id: "123456789012",
                    region: "us-east-1",
                };
                let record = cairn_model::record::normalize_record(&json, &defaults).unwrap();
                encode_record(1_700_000_000_000, i as u128, &record)
            })
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        self.wal.append(&refs).unwrap();
    }

    fn start(&self, name: &str, probe: Arc<Probe>) -> std::thread::JoinHandle<SinkExit> {
        if self.wal.checkpoint(name).is_none() {
            self.wal
                .register_consumer(name, self.wal.oldest_lsn())
                .unwrap();
        }
        let checkpoint = self.wal.checkpoint(name).unwrap();
        let saved = decode_checkpoint::<(), Intent>(name, checkpoint.state.as_deref()).unwrap();
        let consumer = Consumer::new(
            TestSink::new(name, probe),
            self.ctx.clone(),
            checkpoint.lsn,
            saved.intent,
        );
        std::thread::spawn(move || consumer.run())
    }

    /// Every record in the quarantine: (sink, part, reason, exact text).
    fn quarantined(&self) -> Vec<(String, String, String, String)> {
        quarantine::list(self.dir.path())
            .unwrap()
            .into_iter()
            .flat_map(|e| {
                e.records
                    .iter()
                    .map(|r| {
                        (
                            e.sink.clone(),
                            e.part.clone(),
                            e.reason.clone(),
                            String::from_utf8(r.bytes().to_vec()).unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn cursor(&self, name: &str) -> Lsn {
        self.wal.checkpoint(name).unwrap().lsn
    }

    fn stop(&mut self) {
        self.ctx.shutdown.set();
        self.ctx.hub.stop();
        if let Some(r) = self.router.take() {
            r.join().unwrap();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(80),
        permanent_recheck: Duration::from_secs(60),
        permanent_recheck_first: Duration::from_secs(60),
    }
}

#[test]
fn test_retriable_errors_are_retried_with_backoff_then_delivered() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    probe.script.lock().unwrap().extend([
        SinkError::retriable("connection reset"),
        SinkError::retriable("500 InternalError"),
        SinkError::retriable("timeout"),
    ]);
    let started = Instant::now();
    let sink = h.start("s", probe.clone());
    h.append(10, &["A"]);
    wait_until("delivery", Duration::from_secs(10), || {
        probe.delivered.lock().unwrap().len() == 10
    });
    let failures = probe.failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 3, "{failures:?}");
    // Each wait is in [ceiling/2, ceiling] of 20, 40, 80 ms.
    for ((kind, delay), ceiling) in failures.iter().zip([20u64, 40, 80]) {
        assert_eq!(*kind, ErrorKind::Retriable);
        let delay = delay.unwrap();
        assert!(
            delay >= Duration::from_millis(ceiling / 2) && delay <= Duration::from_millis(ceiling),
            "{delay:?} outside [{}, {ceiling}] ms",
            ceiling / 2
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(10 + 20 + 40));
    assert_eq!(probe.delivered_reports.load(Ordering::SeqCst), 1);
    wait_until("the cursor at the head", Duration::from_secs(5), || {
        h.cursor("s") == h.wal.head()
    });
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
}

#[test]
fn test_a_permanent_error_parks_the_sink_until_a_change() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    probe
        .script
        .lock()
        .unwrap()
        .push_back(SinkError::permanent("NoSuchBucket"));
    let sink = h.start("s", probe.clone());
    h.append(5, &["A"]);
    wait_until("the first attempt", Duration::from_secs(5), || {
        !probe.failures.lock().unwrap().is_empty()
    });
    // Parked: no hot loop, nothing delivered, reported as waiting for a change.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(probe.attempts.load(Ordering::SeqCst), 1);
    assert!(probe.delivered.lock().unwrap().is_empty());
    assert_eq!(
        *probe.failures.lock().unwrap(),
        vec![(ErrorKind::Permanent, None)]
    );
    let before = h.cursor("s");
    assert!(before < h.wal.head());
    // A configuration change (the bucket was created) wakes it.
    h.ctx.changes.notify();
    wait_until("delivery after the change", Duration::from_secs(5), || {
        probe.delivered.lock().unwrap().len() == 5
    });
    wait_until("the cursor at the head", Duration::from_secs(5), || {
        h.cursor("s") == h.wal.head()
    });
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
}

#[test]
fn test_backoff_doubles_to_the_cap_with_jitter_in_bounds() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(1);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let mut b = Backoff::new(base, cap);
        for n in 0..8u32 {
            let ceiling = (base * 2u32.pow(n)).min(cap);
            assert_eq!(b.ceiling(), ceiling);
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {n}: {d:?}");
            seen.insert(d);
        }
        b.reset();
        assert_eq!(b.ceiling(), base);
    }
    // Jitter: the waits are spread, not a handful of fixed values.
    assert!(seen.len() > 100, "{} distinct delays", seen.len());
    // A cap below the base is raised to it; huge attempts do not overflow.
    let mut b = Backoff::new(base, Duration::from_millis(1));
    for _ in 0..100 {
        assert!(b.next_delay() <= base);
    }
}

#[test]
fn test_an_interrupted_delivery_recovers_exactly_its_missing_files() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    // Three files (A, B, C) in one delivery; the "process" dies after the first.
    *probe.crash_after_writes.lock().unwrap() = Some(1);
    let sink = h.start("s", probe.clone());
    h.append(30, &["A", "B", "C"]);
    assert!(sink.join().is_err(), "the sink should have crashed");
    let intent = {
        let checkpoint = h.wal.checkpoint("s").unwrap();
        decode_checkpoint::<(), Intent>("s", checkpoint.state.as_deref())
            .unwrap()
            .intent
            .expect("the intent was committed before writing")
    };
    assert_eq!(intent.keys.len(), 3);
    let written_before = probe.bucket.lock().unwrap().objects.clone();
    assert_eq!(written_before.len(), 1);
    h.stop();

    // Restart on the same WAL: a new runtime, router and sink.
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    drop(h);
    let wal = Arc::new(Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap());
    let mut h = Harness::with_wal(dir, wal, 1 << 20, quick_retry());
    *probe.crash_after_writes.lock().unwrap() = None;
    let sink = h.start("s", probe.clone());
    wait_until("recovery", Duration::from_secs(10), || {
        h.cursor("s") >= intent.to
    });
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);

    let bucket = probe.bucket.lock().unwrap();
    // Exactly the announced keys, each written once: the one written before
    // the crash was not rewritten.
    let keys: Vec<&String> = bucket.objects.keys().collect();
    let mut announced: Vec<&String> = intent.keys.iter().map(|(_, k)| k).collect();
    announced.sort();
    assert_eq!(keys, announced);
    assert!(
        bucket.writes.values().all(|n| *n == 1),
        "{:?}",
        bucket.writes
    );
    // Identical bytes: what an uninterrupted delivery of the same records writes.
    for (group, key) in &intent.keys {
        let expected: Vec<String> = (0..30)
            .filter(|i| ["A", "B", "C"][i % 3] == group)
            .map(|i| record_text(i, group))
            .collect();
        assert_eq!(bucket.objects[key], body(&expected), "{key}");
    }
    for (key, bytes) in &written_before {
        assert_eq!(&bucket.objects[key], bytes, "{key} changed");
    }
}

#[test]
fn test_a_sink_that_stays_behind_does_not_hold_back_another() {
    // A small window: the slow sink falls out of it and reads on its own.
    let mut h = Harness::new(16 * 1024, quick_retry());
    let fast = Arc::new(Probe::default());
    let slow = Arc::new(Probe::default());
    *slow.outage.lock().unwrap() = true;
    let fast_sink = h.start("fast", fast.clone());
    let slow_sink = h.start("slow", slow.clone());
    for _ in 0..20 {
        h.append(50, &["A", "B"]);
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_until("the fast sink at the head", Duration::from_secs(10), || {
        h.cursor("fast") == h.wal.head()
    });
    assert_eq!(fast.delivered.lock().unwrap().len(), 1000);
    assert!(h.cursor("slow") < h.wal.head());
    assert!(slow.delivered.lock().unwrap().is_empty());
    // The outage ends: the slow sink catches up, every record exactly once, in order.
    *slow.outage.lock().unwrap() = false;
    wait_until("the slow sink at the head", Duration::from_secs(20), || {
        h.cursor("slow") == h.wal.head()
    });
    let mut delivered = slow.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1000);
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered.len(), 1000);
    assert!(
        h.ctx.hub.own_reads() > 0,
        "the slow sink never read on its own"
    );
    h.stop();
    assert_eq!(fast_sink.join().unwrap(), SinkExit::Shutdown);
    assert_eq!(slow_sink.join().unwrap(), SinkExit::Shutdown);
}

#[test]
fn test_a_sink_pausing_to_deliver_keeps_its_place_in_the_window() {
    // A window of a few chunks, a sink at the head waiting for records, and
    // one that pauses for each delivery as a trail sink writing files does:
    // the window waits for it rather than drop its chunk, so it never reads
    // and decodes on its own what the router decoded.
    let mut h = Harness::new(64 * 1024, quick_retry());
    let eager = Arc::new(Probe::default());
    let pausing = Arc::new(Probe::default());
    *pausing.pause.lock().unwrap() = Duration::from_millis(15);
    let sinks = [
        h.start("eager", eager.clone()),
        h.start("pausing", pausing.clone()),
    ];
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..20 {
        h.append(100, &["A", "B"]);
        std::thread::sleep(Duration::from_millis(5));
    }
    for (name, p) in [("eager", &eager), ("pausing", &pausing)] {
        wait_until(name, Duration::from_secs(20), || {
            p.delivered.lock().unwrap().len() == 2000
        });
    }
    assert_eq!(
        h.ctx.hub.own_reads(),
        0,
        "the pausing sink fell out of the window"
    );
    h.stop();
    for s in sinks {
        assert_eq!(s.join().unwrap(), SinkExit::Shutdown);
    }
}

#[test]
fn test_sinks_at_the_head_share_one_parse() {
    let mut h = Harness::new(64 << 20, quick_retry());
    let probes: Vec<Arc<Probe>> = (0..3).map(|_| Arc::new(Probe::default())).collect();
    let sinks: Vec<_> = probes
        .iter()
        .enumerate()
        .map(|(i, p)| h.start(&format!("s{i}"), p.clone()))
        .collect();
    // Let every sink join at the head before anything is written.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..10 {
        h.append(100, &["A"]);
        std::thread::sleep(Duration::from_millis(5));
    }
    for (i, p) in probes.iter().enumerate() {
        wait_until(&format!("sink {i}"), Duration::from_secs(10), || {
            p.delivered.lock().unwrap().len() == 1000
        });
    }
    assert_eq!(h.ctx.hub.own_reads(), 0, "a sink parsed records itself");
    assert!(h.ctx.hub.routed_chunks() > 0);
    h.stop();
    for s in sinks {
        assert_eq!(s.join().unwrap(), SinkExit::Shutdown);
    }
}

/// A record with every field ingest would otherwise append, so the stored
/// JSON is this text.
fn record_text(i: usize, name: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"id-{i}","eventSource":"test.amazonaws.com","eventName":"{name}","eventTime":"2024-05-01T10:00:00Z","eventType":"AwsApiCall","eventCategory":"Management","awsRegion":"us-east-1","recipientAccountId":"123456789012"}}"#
    )
}

#[test]
fn test_an_undeliverable_file_is_quarantined_and_the_rest_delivered() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    probe.refused.lock().unwrap().insert("B".into());
    let sink = h.start("s", probe.clone());
    h.append(30, &["A", "B", "C"]);
    wait_until("the cursor at the head", Duration::from_secs(10), || {
        h.cursor("s") == h.wal.head()
    });
    // Every A and C record delivered; every B record set aside, exact bytes.
    let mut delivered = probe.delivered.lock().unwrap().clone();
    delivered.sort();
    let mut expected: Vec<String> = (0..30)
        .filter(|i| i % 3 != 1)
        .map(|i| record_text(i, ["A", "B", "C"][i % 3]))
        .collect();
    expected.sort();
    assert_eq!(delivered, expected);
    let quarantined = h.quarantined();
    let texts: Vec<&str> = quarantined.iter().map(|q| q.3.as_str()).collect();
    let expected_b: Vec<String> = (0..30)
        .filter(|i| i % 3 == 1)
        .map(|i| record_text(i, "B"))
        .collect();
    assert_eq!(texts, expected_b);
    assert!(
        quarantined
            .iter()
            .all(|q| q.0 == "s" && q.1.ends_with("/B") && q.2.contains("InvalidObjectKey"))
    );
    // Not parked, not even reported as a failure: reported as set aside.
    assert!(probe.failures.lock().unwrap().is_empty());
    assert_eq!(probe.quarantined.lock().unwrap().len(), 1);
    assert_eq!(probe.quarantined.lock().unwrap()[0].1, 10);
    assert_eq!(h.ctx.quarantine.quarantined_records(), 10);

    // The sink keeps delivering later records (and keeps setting B aside).
    h.append(6, &["A", "B"]);
    wait_until("later records", Duration::from_secs(10), || {
        probe.delivered.lock().unwrap().len() == 23
    });
    wait_until("the cursor at the head", Duration::from_secs(10), || {
        h.cursor("s") == h.wal.head()
    });
    assert_eq!(h.quarantined().len(), 13);
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
}

#[test]
fn test_a_record_that_cannot_be_batched_is_set_aside_alone() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    let sink = h.start("s", probe.clone());
    h.append(12, &["A", "Poison", "A"]);
    wait_until("the cursor at the head", Duration::from_secs(10), || {
        h.cursor("s") == h.wal.head()
    });
    assert_eq!(probe.delivered.lock().unwrap().len(), 8);
    let quarantined = h.quarantined();
    assert_eq!(quarantined.len(), 4);
    for (q, i) in quarantined.iter().zip([1, 4, 7, 10]) {
        assert_eq!(q.3, record_text(i, "Poison"));
        assert!(q.2.contains("cannot be batched"));
        assert_eq!(q.1, "");
    }
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
}

/// Restarts the harness on the same WAL and data dir.
fn restart(h: Harness) -> Harness {
    let mut h = h;
    h.stop();
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    drop(h);
    let wal = Arc::new(Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap());
    Harness::with_wal(dir, wal, 1 << 20, quick_retry())
}

/// Every record appended, each exactly once in delivered ∪ quarantined, and never in both.
fn assert_exactly_once(h: &Harness, probe: &Probe, n: usize, names: &[&str]) {
    let bucket = probe.bucket.lock().unwrap();
    let mut in_bucket: Vec<String> = bucket
        .objects
        .values()
        .flat_map(|b| {
            String::from_utf8(b.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        bucket.writes.values().all(|n| *n == 1),
        "{:?}",
        bucket.writes
    );
    let quarantined: Vec<String> = h.quarantined().into_iter().map(|q| q.3).collect();
    for q in &quarantined {
        assert!(!in_bucket.contains(q), "{q} both delivered and quarantined");
    }
    in_bucket.extend(quarantined);
    in_bucket.sort();
    let mut expected: Vec<String> = (0..n)
        .map(|i| record_text(i, names[i % names.len()]))
        .collect();
    expected.sort();
    assert_eq!(in_bucket, expected);
}

#[test]
fn test_a_crash_after_the_quarantine_write_keeps_exactly_once() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    probe.refused.lock().unwrap().insert("B".into());
    // A written, B refused and set aside, C written: the "process" dies
    // before the cursor moves.
    *probe.crash_after_writes.lock().unwrap() = Some(2);
    let sink = h.start("s", probe.clone());
    h.append(30, &["A", "B", "C"]);
    assert!(sink.join().is_err(), "the sink should have crashed");
    assert_eq!(h.quarantined().len(), 10);
    assert!(h.cursor("s") < h.wal.head());

    // After the restart the store would take B: it must stay set aside.
    let mut h = restart(h);
    *probe.crash_after_writes.lock().unwrap() = None;
    probe.refused.lock().unwrap().clear();
    let sink = h.start("s", probe.clone());
    wait_until("the cursor at the head", Duration::from_secs(10), || {
        h.cursor("s") == h.wal.head()
    });
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
    assert_eq!(probe.bucket.lock().unwrap().objects.len(), 2);
    assert_exactly_once(&h, &probe, 30, &["A", "B", "C"]);
}

#[test]
fn test_a_crash_before_the_quarantine_write_keeps_exactly_once() {
    let mut h = Harness::new(1 << 20, quick_retry());
    let probe = Arc::new(Probe::default());
    probe.refused.lock().unwrap().insert("B".into());
    *probe.crash_in_set_aside.lock().unwrap() = true;
    let sink = h.start("s", probe.clone());
    h.append(30, &["A", "B", "C"]);
    assert!(sink.join().is_err(), "the sink should have crashed");
    assert!(h.quarantined().is_empty());

    // Restarted while the store still refuses B: set aside now, once.
    let h = restart(h);
    *probe.crash_in_set_aside.lock().unwrap() = false;
    let sink = h.start("s", probe.clone());
    wait_until("the cursor at the head", Duration::from_secs(10), || {
        h.cursor("s") == h.wal.head()
    });
    assert_eq!(h.quarantined().len(), 10);
    // Restarted again (a crash after the commit changes nothing).
    let h = restart(h);
    probe.refused.lock().unwrap().clear();
    let sink2 = h.start("s", probe.clone());
    std::thread::sleep(Duration::from_millis(200));
    let mut h = h;
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
    assert_eq!(sink2.join().unwrap(), SinkExit::Shutdown);
    assert_exactly_once(&h, &probe, 30, &["A", "B", "C"]);
}

#[test]
fn test_a_sink_in_backoff_sees_a_change_at_once() {
    let mut h = Harness::new(
        1 << 20,
        RetryPolicy {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(30),
            permanent_recheck: Duration::from_secs(60),
            permanent_recheck_first: Duration::from_secs(60),
        },
    );
    let probe = Arc::new(Probe::default());
    *probe.outage.lock().unwrap() = true;
    let sink = h.start("s", probe.clone());
    h.append(3, &["A"]);
    wait_until("the first attempt", Duration::from_secs(5), || {
        !probe.failures.lock().unwrap().is_empty()
    });
    *probe.outage.lock().unwrap() = false;
    // A 15-30 s backoff, cut short by a configuration change.
    let changed = Instant::now();
    h.ctx.changes.notify();
    wait_until("delivery after the change", Duration::from_secs(5), || {
        probe.delivered.lock().unwrap().len() == 3
    });
    assert!(changed.elapsed() < Duration::from_secs(5));
    h.stop();
    assert_eq!(sink.join().unwrap(), SinkExit::Shutdown);
}
