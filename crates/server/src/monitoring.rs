//! The live side of CloudWatch alarms and SNS: alarm evaluation and
//! notification delivery.
//!
//! * **Evaluation.** An alarm is evaluated as soon as samples of its metric
//!   are stored (a trail's log-group feed, PutLogEvents, PutMetricData tell
//!   [`Monitoring::samples_arrived`]) and on a steady tick (missing data,
//!   periods closing). A state change, its history items and the
//!   notifications its actions publish are recorded in one transaction of
//!   the monitoring store, only if the alarm is still in the state the
//!   evaluation started from: a change is recorded, and notified, once.
//! * **Delivery.** Notifications wait in the store's outbox until their
//!   endpoint takes them (HTTP 200–499, as SNS counts) or the subscription's
//!   delivery policy runs out of retries; a restart resumes them. Delivery
//!   runs on its own tasks and never holds up ingest or the API. The `file`
//!   protocol (a Cairn extension) appends each notification as one JSON
//!   line to a file under the configured roots, fsynced before it counts;
//!   one file's notifications are appended one at a time, in outbox order.
//!
//! Time comes from a [`Clock`], so tests drive it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use cairn_alarm::{ActionOutcome, AlarmNotification, StateChange, action_item, state_update_item};
use cairn_monitor::{MetricKey, Monitor, OutboxEntry, StoredAlarm, Subscription};
use cairn_notify::{
    EffectiveDeliveryPolicy, MessageAttribute, Protocol, SignatureVersion, SigningKey, SnsMessage,
    SubscriptionDeliveryPolicy, TopicDeliveryPolicy,
};

/// How often every alarm is evaluated besides on new samples.
const ALARM_TICK: Duration = Duration::from_secs(5);
/// How long one HTTP delivery attempt may take (SNS's 15 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Deliveries attempted at once.
const DELIVERY_BATCH: usize = 32;

/// Where time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A failure of the monitoring runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cairn_monitor::Error),
    /// Signing or a document failed.
    #[error(transparent)]
    Notify(#[from] cairn_notify::Error),
}

/// Alarm evaluation and notification delivery, shared by the services.
#[derive(Debug)]
pub struct Monitoring {
    monitor: Arc<Monitor>,
    signing: SigningKey,
    public_url: std::sync::RwLock<String>,
    file_roots: Vec<PathBuf>,
    clock: Arc<dyn Clock>,
    deliveries: tokio::sync::Notify,
    samples: tokio::sync::mpsc::UnboundedSender<Vec<MetricKey>>,
    samples_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Vec<MetricKey>>>>,
    http: reqwest::Client,
    /// Counters for `/metrics`.
    pub counters: Counters,
}

/// What `/metrics` shows of alarms and notifications.
#[derive(Debug, Default)]
pub struct Counters {
    /// Gauge: notifications waiting in the outbox.
    pub pending: AtomicU64,
    /// Notifications an endpoint took.
    pub delivered: AtomicU64,
    /// Failed delivery attempts.
    pub failed_attempts: AtomicU64,
    /// Notifications dropped after their retries ran out.
    pub dropped: AtomicU64,
    /// Alarm state changes recorded.
    pub state_changes: AtomicU64,
}

impl Monitoring {
    /// The runtime over `monitor`, signing with the key in `key_dir`
    /// (created on first use), writing `file` notifications only under
    /// `file_roots`, with URLs under `public_url`.
    pub fn open(
        monitor: Arc<Monitor>,
        key_dir: &std::path::Path,
        public_url: String,
        file_roots: Vec<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, Error> {
        let signing = SigningKey::open(key_dir, clock.now())?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Ok(Arc::new(Self {
            monitor,
            signing,
            public_url: std::sync::RwLock::new(public_url),
            file_roots,
            clock,
            deliveries: tokio::sync::Notify::new(),
            samples: tx,
            samples_rx: std::sync::Mutex::new(Some(rx)),
            http,
            counters: Counters::default(),
        }))
    }

    /// The store.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Now, by the runtime's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Sets the base of the URLs put in notifications (the listener's
    /// address once bound, unless configured).
    pub fn set_public_url(&self, url: String) {
        *self.public_url.write().unwrap_or_else(|p| p.into_inner()) = url;
    }

    fn public_url(&self) -> String {
        self.public_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The signing certificate's file name (served at `/<name>`) and PEM.
    pub fn certificate(&self) -> (String, &str) {
        (
            self.signing.certificate_file_name(),
            self.signing.certificate_pem(),
        )
    }

    fn signing_cert_url(&self) -> String {
        format!(
            "{}/{}",
            self.public_url().trim_end_matches('/'),
            self.signing.certificate_file_name()
        )
    }

    /// Which roots `file` subscriptions may write under.
    pub fn file_roots(&self) -> &[PathBuf] {
        &self.file_roots
    }

    /// Tells the evaluator that these metrics got samples.
    pub fn samples_arrived(&self, metrics: Vec<MetricKey>) {
        if !metrics.is_empty() {
            let _ = self.samples.send(metrics);
        }
    }

    /// Wakes the delivery loop (something was put in the outbox).
    pub fn wake_deliveries(&self) {
        self.deliveries.notify_one();
    }

    /// The signed document of a notification to one subscription.
    #[allow(clippy::too_many_arguments)]
    pub fn notification_for(
        &self,
        subscription: &Subscription,
        topic_delivery_policy: Option<&str>,
        message_id: &str,
        subject: Option<&str>,
        message: &str,
        attributes: &BTreeMap<String, MessageAttribute>,
        signature_version: SignatureVersion,
        now: DateTime<Utc>,
    ) -> Result<OutboxEntry, Error> {
        let unsubscribe = cairn_notify::unsubscribe_url(&self.public_url(), &subscription.arn);
        let mut document = SnsMessage::notification(
            message_id,
            &subscription.topic_arn,
            subject,
            message,
            now,
            &unsubscribe,
            attributes.clone(),
            signature_version,
            &self.signing_cert_url(),
        );
        document.sign(&self.signing)?;
        let raw = subscription
            .attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v == "true");
        let content_type = policy_with(topic_delivery_policy, subscription)
            .content_type()
            .to_owned();
        let body = if subscription.protocol == "file" {
            document.to_json_line()
        } else if raw {
            cairn_notify::raw_message_body(&document).to_owned()
        } else {
            document.to_json()
        };
        let headers =
            cairn_notify::http_headers(&document, &subscription.arn, raw, Some(&content_type));
        Ok(OutboxEntry {
            subscription_arn: subscription.arn.clone(),
            protocol: subscription.protocol.clone(),
            endpoint: subscription.endpoint.clone(),
            body,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            message_id: message_id.to_owned(),
            due_ms: now.timestamp_millis(),
        })
    }

    /// The signed SubscriptionConfirmation request of a new subscription.
    pub fn confirmation_for(
        &self,
        subscription: &Subscription,
        now: DateTime<Utc>,
    ) -> Result<OutboxEntry, Error> {
        let message_id = cairn_notify::message_id();
        let subscribe = cairn_notify::subscribe_url(
            &self.public_url(),
            &subscription.topic_arn,
            &subscription.token,
        );
        let mut document = SnsMessage::subscription_confirmation(
            &message_id,
            &subscription.topic_arn,
            &subscription.token,
            &subscribe,
            now,
            SignatureVersion::V1,
            &self.signing_cert_url(),
        );
        document.sign(&self.signing)?;
        let headers = cairn_notify::http_headers(&document, &subscription.arn, false, None);
        Ok(OutboxEntry {
            subscription_arn: subscription.arn.clone(),
            protocol: subscription.protocol.clone(),
            endpoint: subscription.endpoint.clone(),
            body: document.to_json(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            message_id,
            due_ms: now.timestamp_millis(),
        })
    }

    /// The delivery policy of a subscription, its topic read from the store
    /// (not to be called while the store is held).
    fn policy_of(&self, subscription: &Subscription) -> EffectiveDeliveryPolicy {
        let topic_policy = self
            .monitor
            .topic(&subscription.topic_arn)
            .ok()
            .flatten()
            .and_then(|t| t.attributes.get("DeliveryPolicy").cloned());
        policy_with(topic_policy.as_deref(), subscription)
    }

    /// Publishes `message` to a topic's confirmed subscriptions (durably,
    /// in the outbox); returns the message id. Blocking.
    pub fn publish_blocking(
        &self,
        topic_arn: &str,
        subject: Option<&str>,
        message: &dyn Fn(Protocol) -> Result<String, cairn_notify::Error>,
        attributes: &BTreeMap<String, MessageAttribute>,
        signature_version: SignatureVersion,
    ) -> Result<String, Error> {
        let message_id = cairn_notify::message_id();
        let now = self.now();
        // Read before the fan-out: `build` runs while the store is held.
        let topic_policy = self
            .monitor
            .topic(topic_arn)?
            .and_then(|t| t.attributes.get("DeliveryPolicy").cloned());
        let build = |s: &Subscription| -> cairn_monitor::Result<OutboxEntry> {
            let protocol = match s.protocol.as_str() {
                "https" => Protocol::Https,
                "file" => Protocol::File,
                _ => Protocol::Http,
            };
            let text =
                message(protocol).map_err(|e| cairn_monitor::Error::Invalid(e.to_string()))?;
            self.notification_for(
                s,
                topic_policy.as_deref(),
                &message_id,
                subject,
                &text,
                attributes,
                signature_version,
                now,
            )
            .map_err(|e| cairn_monitor::Error::Invalid(e.to_string()))
        };
        let sent = self.monitor.publish(topic_arn, &build)?;
        if sent > 0 {
            self.wake_deliveries();
        }
        Ok(message_id)
    }

    // -----------------------------------------------------------------
    // Alarm evaluation

    /// Evaluates one alarm now and records (and notifies) a state change.
    /// Blocking. Returns whether the state changed.
    pub fn evaluate_blocking(&self, alarm: &StoredAlarm) -> Result<bool, Error> {
        let now = self.now();
        let definition = &alarm.definition;
        let period = definition.period.max(1);
        let span = i64::from(period)
            * i64::from(definition.evaluation_periods.max(1))
            * i64::from(cairn_alarm::LOOKBACK_FACTOR + 1);
        let from = now - chrono::Duration::seconds(span);
        let to = now + chrono::Duration::seconds(i64::from(period));
        let unit = definition.unit.map(|u| u.as_str().to_owned());
        let aggregates =
            self.monitor
                .metric_aggregates(&alarm.metric(), period, from, to, unit.as_deref())?;
        let Some(change) = cairn_alarm::evaluate(definition, &alarm.state, &aggregates, now) else {
            return Ok(false);
        };
        self.record_change(alarm, &change, now)
    }

    /// Records a state change of `alarm` (from an evaluation or
    /// SetAlarmState) with its history and the notifications of its actions.
    pub fn record_change(
        &self,
        alarm: &StoredAlarm,
        change: &StateChange,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let definition = &alarm.definition;
        let name = &definition.alarm_name;
        let mut history = vec![state_update_item(name, change)];
        let mut outbox = Vec::new();
        for action in definition.actions_to_run(change.new.value) {
            let topic = self.monitor.topic(action)?;
            let Some(topic) = topic else {
                let error = if action.starts_with("arn:aws:sns:") {
                    "Received error: \"Topic does not exist\"".to_owned()
                } else {
                    "Received error: \"Cairn runs only SNS topic actions\"".to_owned()
                };
                history.push(action_item(
                    name,
                    change,
                    action,
                    ActionOutcome::Failed { error: &error },
                    now,
                ));
                continue;
            };
            let notification = AlarmNotification::new(definition, change, alarm.context());
            let message = notification.to_json();
            let subject = notification.subject();
            let message_id = cairn_notify::message_id();
            for subscription in self.monitor.confirmed_subscriptions(&topic.arn)? {
                outbox.push(self.notification_for(
                    &subscription,
                    topic.attributes.get("DeliveryPolicy").map(String::as_str),
                    &message_id,
                    Some(&subject),
                    &message,
                    &BTreeMap::new(),
                    SignatureVersion::V1,
                    now,
                )?);
            }
            history.push(action_item(
                name,
                change,
                action,
                ActionOutcome::Succeeded {
                    published_message: Some(&message),
                },
                now,
            ));
        }
        let recorded = self
            .monitor
            .record_state_change(alarm, change, &history, &outbox)?;
        if recorded {
            self.counters.state_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(alarm = %name, from = %change.old.value, to = %change.new.value, "alarm state changed");
            if !outbox.is_empty() {
                self.wake_deliveries();
            }
        }
        Ok(recorded)
    }

    fn evaluate_all_blocking(&self, metrics: Option<&BTreeSet<MetricKey>>) {
        let alarms = match metrics {
            None => self.monitor.alarms(None),
            Some(keys) => keys
                .iter()
                .map(|k| self.monitor.alarms_for_metric(k))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.into_iter().flatten().collect()),
        };
        match alarms {
            Ok(alarms) => {
                for alarm in alarms {
                    if let Err(e) = self.evaluate_blocking(&alarm) {
                        tracing::warn!(alarm = %alarm.definition.alarm_name, error = %e, "cannot evaluate an alarm");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read alarms to evaluate"),
        }
    }

    /// Starts the evaluator and the delivery loop on the current runtime.
    pub fn spawn(self: &Arc<Self>) {
        let Some(mut rx) = self
            .samples_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ALARM_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let metrics = tokio::select! {
                    _ = tick.tick() => None,
                    received = rx.recv() => match received {
                        None => return,
                        Some(first) => {
                            let mut keys: BTreeSet<MetricKey> = first.into_iter().collect();
                            while let Ok(more) = rx.try_recv() {
                                keys.extend(more);
                            }
                            Some(keys)
                        }
                    },
                };
                let worker = this.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    worker.evaluate_all_blocking(metrics.as_ref());
                })
                .await;
            }
        });
        let this = self.clone();
        tokio::spawn(async move { this.deliver_forever().await });
    }

    // -----------------------------------------------------------------
    // Delivery

    async fn deliver_forever(self: Arc<Self>) {
        loop {
            let now_ms = self.now().timestamp_millis();
            let store = self.monitor.clone();
            let due =
                tokio::task::spawn_blocking(move || store.due_deliveries(now_ms, DELIVERY_BATCH))
                    .await;
            let due = match due {
                Ok(Ok(due)) => due,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the notification outbox");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the outbox read failed");
                    Vec::new()
                }
            };
            let busy = due.len() == DELIVERY_BATCH;
            let attempts = delivery_lanes(due).into_iter().map(|lane| {
                let this = self.clone();
                async move {
                    for d in lane {
                        let outcome = this.attempt(&d.entry).await;
                        let store = this.monitor.clone();
                        let this2 = this.clone();
                        let _ =
                            tokio::task::spawn_blocking(move || this2.settle(&store, &d, outcome))
                                .await;
                    }
                }
            });
            futures::future::join_all(attempts).await;
            if busy {
                continue;
            }
            let store = self.monitor.clone();
            let (next, pending) = tokio::task::spawn_blocking(move || {
                (store.next_delivery_due(), store.pending_deliveries())
            })
            .await
            .unwrap_or((Ok(None), Ok(0)));
            let next = next.ok().flatten();
            if let Ok(pending) = pending {
                self.counters.pending.store(pending, Ordering::Relaxed);
            }
            let wait = next.map_or(Duration::from_secs(1), |due| {
                let in_ms = due - self.now().timestamp_millis();
                Duration::from_millis(in_ms.clamp(0, 1000) as u64)
            });
            if wait.is_zero() {
                continue;
            }
            let _ = tokio::time::timeout(wait, self.deliveries.notified()).await;
        }
    }

    /// One attempt: `Ok` when the endpoint took it.
    async fn attempt(&self, entry: &OutboxEntry) -> Result<(), String> {
        match entry.protocol.as_str() {
            "file" => {
                let roots: Vec<PathBuf> = self.file_roots.clone();
                let endpoint = entry.endpoint.clone();
                let line = entry.body.clone();
                tokio::task::spawn_blocking(move || append_line(&endpoint, &roots, &line))
                    .await
                    .map_err(|e| e.to_string())?
            }
            _ => {
                let mut request = self.http.post(&entry.endpoint).body(entry.body.clone());
                for (k, v) in &entry.headers {
                    request = request.header(k.as_str(), v.as_str());
                }
                let status = request.send().await.map(|r| r.status().as_u16()).ok();
                match cairn_notify::attempt_outcome(status) {
                    cairn_notify::AttemptOutcome::Delivered => Ok(()),
                    cairn_notify::AttemptOutcome::Retry => Err(match status {
                        Some(s) => format!("the endpoint answered HTTP {s}"),
                        None => "the endpoint did not answer".to_owned(),
                    }),
                }
            }
        }
    }

    /// Removes a delivered notification or schedules its next attempt.
    fn settle(
        &self,
        store: &Monitor,
        delivery: &cairn_monitor::PendingDelivery,
        outcome: Result<(), String>,
    ) {
        let result = match outcome {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                store.finish_delivery(delivery.id)
            }
            Err(error) => {
                self.counters
                    .failed_attempts
                    .fetch_add(1, Ordering::Relaxed);
                let subscription = store.subscription(&delivery.entry.subscription_arn);
                let retry = match subscription {
                    Ok(Some(s)) => {
                        let attempts = delivery.attempts + 1;
                        self.policy_of(&s)
                            .healthy_retry_policy
                            .next_attempt_at(self.now(), attempts)
                            .map(|at| (attempts, at))
                    }
                    _ => None,
                };
                match retry {
                    Some((attempts, at)) => {
                        tracing::info!(subscription = %delivery.entry.subscription_arn, %error, attempt = attempts, "notification not delivered; retrying");
                        store.retry_delivery(delivery.id, attempts, at.timestamp_millis())
                    }
                    None => {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(subscription = %delivery.entry.subscription_arn, message = %delivery.entry.message_id, %error, "notification not delivered; retries exhausted, dropped");
                        store.finish_delivery(delivery.id)
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot update the notification outbox");
        }
    }
}

/// Splits due deliveries into lanes attempted concurrently; a lane's
/// deliveries go one after another in outbox order. Notifications for one
/// file share a lane, so its lines keep the order they were published in
/// (concurrent appends would interleave them); HTTP deliveries each get their
/// own, as SNS promises no order to HTTP endpoints and a slow endpoint must
/// not hold up the rest.
fn delivery_lanes(
    due: Vec<cairn_monitor::PendingDelivery>,
) -> Vec<Vec<cairn_monitor::PendingDelivery>> {
    let mut lanes: Vec<Vec<cairn_monitor::PendingDelivery>> = Vec::new();
    let mut file_lane: std::collections::HashMap<String, usize> = Default::default();
    for d in due {
        if d.entry.protocol == "file" {
            match file_lane.get(&d.entry.endpoint) {
                Some(&i) => lanes[i].push(d),
                None => {
                    file_lane.insert(d.entry.endpoint.clone(), lanes.len());
                    lanes.push(vec![d]);
                }
            }
        } else {
            lanes.push(vec![d]);
        }
    }
    lanes
}

/// CloudTrail's notification of delivered log files
/// (`{"s3Bucket":"...","s3ObjectKey":["..."]}`) published to the trail's
/// topic, and the trail's notification status kept for GetTrailStatus.
/// Called on the trail sink's thread after the files are written.
pub fn notify_log_files(
    monitoring: &Monitoring,
    meta: &cairn_meta::Metastore,
    trail: &cairn_model::TrailConfig,
    bucket: &str,
    keys: &[String],
) {
    let Some(topic) = trail.sns_topic_name.as_deref() else {
        return;
    };
    let topic_arn = crate::services::cloudtrail::sns_topic_arn(trail, topic);
    let message = serde_json::json!({ "s3Bucket": bucket, "s3ObjectKey": keys }).to_string();
    let now = monitoring.now();
    let published = monitoring
        .monitor
        .topic(&topic_arn)
        .map_err(Error::from)
        .and_then(|found| match found {
            None => Err(Error::Store(cairn_monitor::Error::NotFound(format!(
                "SNS topic {topic_arn} does not exist"
            )))),
            Some(_) => monitoring.publish_blocking(
                &topic_arn,
                None,
                &|_| Ok(message.clone()),
                &BTreeMap::new(),
                SignatureVersion::V1,
            ),
        });
    let recorded = meta.update_trail_status(&trail.arn, |s| {
        s.latest_notification_attempt_time = Some(now);
        match &published {
            Ok(_) => {
                s.latest_notification_time = Some(now);
                s.latest_notification_attempt_succeeded = Some(now);
                s.latest_notification_error = None;
            }
            Err(e) => s.latest_notification_error = Some(e.to_string()),
        }
    });
    if let Err(e) = published {
        tracing::warn!(trail = %trail.arn, topic = %topic_arn, error = %e, "cannot notify delivered log files");
    }
    if let Err(e) = recorded {
        tracing::debug!(trail = %trail.arn, error = %e, "cannot record the notification status");
    }
}

/// A subscription's effective delivery policy given its topic's.
fn policy_with(topic_policy: Option<&str>, subscription: &Subscription) -> EffectiveDeliveryPolicy {
    let topic = topic_policy.and_then(|p| TopicDeliveryPolicy::parse(p).ok());
    let own = subscription
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| SubscriptionDeliveryPolicy::parse(p).ok());
    EffectiveDeliveryPolicy::resolve(topic.as_ref(), own.as_ref())
}

/// Appends one line to a `file` subscription's file (under an allowed
/// root), fsynced before it counts as delivered.
fn append_line(endpoint: &str, roots: &[PathBuf], line: &str) -> Result<(), String> {
    use std::io::Write;
    let roots: Vec<&std::path::Path> = roots.iter().map(PathBuf::as_path).collect();
    let path = cairn_notify::file_endpoint_path(endpoint, &roots).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut bytes = line.trim_end_matches('\n').as_bytes().to_vec();
    bytes.push(b'\n');
    file.write_all(&bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock the test moves.
    #[derive(Debug)]
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn at(text: &str) -> Arc<Self> {
            Arc::new(Self(Mutex::new(
                DateTime::parse_from_rfc3339(text)
                    .expect("time")
                    .with_timezone(&Utc),
            )))
        }

        fn advance(&self, seconds: i64) {
            let mut now = self.0.lock().expect("clock");
            *now += chrono::Duration::seconds(seconds);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("clock")
        }
    }

    fn pending(id: i64, protocol: &str, endpoint: &str) -> cairn_monitor::PendingDelivery {
        cairn_monitor::PendingDelivery {
            id,
            entry: OutboxEntry {
                subscription_arn: format!("arn:aws:sns:us-east-1:123456789012:t:{id}"),
                protocol: protocol.into(),
                endpoint: endpoint.into(),
                body: format!("m{id}"),
                headers: Vec::new(),
                message_id: format!("id-{id}"),
                due_ms: 0,
            },
            attempts: 0,
        }
    }

    #[test]
    fn one_files_notifications_share_a_lane_in_outbox_order() {
        let due = vec![
            pending(1, "file", "file:///srv/a.jsonl"),
            pending(2, "http", "http://127.0.0.1:9/x"),
            pending(3, "file", "file:///srv/b.jsonl"),
            pending(4, "file", "file:///srv/a.jsonl"),
            pending(5, "http", "http://127.0.0.1:9/x"),
            pending(6, "file", "file:///srv/a.jsonl"),
        ];
        let lanes: Vec<Vec<i64>> = delivery_lanes(due)
            .into_iter()
            .map(|lane| lane.into_iter().map(|d| d.id).collect())
            .collect();
        assert_eq!(lanes, vec![vec![1, 4, 6], vec![2], vec![3], vec![5]]);
    }

    fn alarm_input(name: &str, treat_missing: Option<&str>) -> cairn_alarm::PutMetricAlarmInput {
        cairn_alarm::PutMetricAlarmInput {
            alarm_name: Some(name.into()),
            metric_name: Some("Errors".into()),
            namespace: Some("App".into()),
            statistic: Some("Sum".into()),
            period: Some(60),
            evaluation_periods: Some(2),
            datapoints_to_alarm: Some(1),
            threshold: Some(3.0),
            comparison_operator: Some("GreaterThanOrEqualToThreshold".into()),
            treat_missing_data: treat_missing.map(str::to_owned),
            ..Default::default()
        }
    }

    fn sample(monitoring: &Monitoring, value: f64) {
        let now = monitoring.now();
        let key = MetricKey {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            namespace: "App".into(),
            name: "Errors".into(),
            dimensions: Vec::new(),
        };
        monitoring
            .monitor()
            .put_metric_data(&[(
                key,
                now.timestamp_millis(),
                None,
                cairn_alarm::MetricAggregate::of_value(value),
            )])
            .expect("sample");
    }

    fn state(monitoring: &Monitoring, name: &str) -> cairn_alarm::StateValue {
        monitoring
            .monitor()
            .alarm("123456789012", "us-east-1", name)
            .expect("read")
            .expect("alarm")
            .state
            .value
    }

    fn evaluate(monitoring: &Monitoring, name: &str) -> bool {
        let alarm = monitoring
            .monitor()
            .alarm("123456789012", "us-east-1", name)
            .expect("read")
            .expect("alarm");
        monitoring.evaluate_blocking(&alarm).expect("evaluate")
    }

    #[test]
    fn test_the_clock_drives_alarm_transitions() {
        use cairn_alarm::StateValue::{Alarm, InsufficientData, Ok as Fine};
        let dir = tempfile::tempdir().expect("dir");
        let clock = ManualClock::at("2026-12-02T10:00:05Z");
        let monitoring = Monitoring::open(
            Arc::new(Monitor::in_memory().expect("store")),
            &dir.path().join("keys"),
            "http://127.0.0.1:1".into(),
            Vec::new(),
            clock.clone(),
        )
        .expect("monitoring");
        for (name, missing) in [("missing", None), ("quiet", Some("notBreaching"))] {
            let definition =
                cairn_alarm::validate_put_metric_alarm(&alarm_input(name, missing)).expect("valid");
            monitoring
                .monitor()
                .put_alarm("123456789012", "us-east-1", &definition, clock.now())
                .expect("put");
        }
        // No data: `missing` stays INSUFFICIENT_DATA; `notBreaching` is OK
        // once a period without data has closed.
        assert!(!evaluate(&monitoring, "missing"));
        clock.advance(60);
        assert!(!evaluate(&monitoring, "missing"));
        assert!(evaluate(&monitoring, "quiet"));
        assert_eq!(state(&monitoring, "missing"), InsufficientData);
        assert_eq!(state(&monitoring, "quiet"), Fine);

        // Three errors in the open period breach at once, with no tick.
        sample(&monitoring, 2.0);
        assert!(evaluate(&monitoring, "missing"));
        assert_eq!(state(&monitoring, "missing"), Fine);
        sample(&monitoring, 1.0);
        assert!(evaluate(&monitoring, "missing"));
        assert!(evaluate(&monitoring, "quiet"));
        assert_eq!(state(&monitoring, "missing"), Alarm);
        assert_eq!(state(&monitoring, "quiet"), Alarm);
        // Evaluating again changes nothing: one change, one history item.
        assert!(!evaluate(&monitoring, "missing"));

        // Quiet minutes: the breaching period leaves the window (and the
        // look-back that `missing` searches for datapoints).
        clock.advance(360);
        assert!(evaluate(&monitoring, "quiet"));
        assert_eq!(state(&monitoring, "quiet"), Fine);
        assert!(evaluate(&monitoring, "missing"));
        assert_eq!(state(&monitoring, "missing"), InsufficientData);

        let (history, _) = monitoring
            .monitor()
            .alarm_history(
                "123456789012",
                "us-east-1",
                Some("missing"),
                Some(cairn_alarm::HistoryItemType::StateUpdate),
                None,
                None,
                true,
                0,
                100,
            )
            .expect("history");
        let summaries: Vec<&str> = history.iter().map(|h| h.history_summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "Alarm updated from INSUFFICIENT_DATA to OK",
                "Alarm updated from OK to ALARM",
                "Alarm updated from ALARM to INSUFFICIENT_DATA"
            ]
        );
    }
}
