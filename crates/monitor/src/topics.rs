//! SNS topics, subscriptions, and the outbox of notifications waiting for
//! delivery (durable: a notification put here survives a restart and is
//! removed only once its endpoint took it or its retries ran out).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use crate::{Error, Monitor, Result};

/// Topics one account may have (SNS's default quota is 100 000; a local
/// server keeps a smaller bound).
const MAX_TOPICS: i64 = 10_000;

/// Subscriptions one topic may have.
const MAX_SUBSCRIPTIONS_PER_TOPIC: i64 = 10_000;

/// A topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// Its ARN.
    pub arn: String,
    /// The owning account.
    pub account: String,
    /// Its region.
    pub region: String,
    /// Its name.
    pub name: String,
    /// Attributes set on it (`DisplayName`, `Policy`, `DeliveryPolicy`...).
    pub attributes: BTreeMap<String, String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Its ARN.
    pub arn: String,
    /// Its topic.
    pub topic_arn: String,
    /// The owning account.
    pub account: String,
    /// `http`, `https` or `file`.
    pub protocol: String,
    /// Where notifications go.
    pub endpoint: String,
    /// Attributes set on it (`RawMessageDelivery`, `DeliveryPolicy`...).
    pub attributes: BTreeMap<String, String>,
    /// Whether it was confirmed.
    pub confirmed: bool,
    /// Whether its confirmation was authenticated (then unsubscribing needs
    /// a signed request).
    pub authenticated: bool,
    /// Its confirmation token.
    pub token: String,
}

/// A notification to deliver to one subscription's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The subscription (or the pending subscription's ARN for a
    /// confirmation request).
    pub subscription_arn: String,
    /// `http`, `https` or `file`.
    pub protocol: String,
    /// The endpoint.
    pub endpoint: String,
    /// The body to send (or the JSON line to append).
    pub body: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The message's id.
    pub message_id: String,
    /// When to try first (ms).
    pub due_ms: i64,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// Its row id.
    pub id: i64,
    /// What to deliver.
    pub entry: OutboxEntry,
    /// Attempts so far.
    pub attempts: u32,
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))
}

fn decode_map(text: &str, what: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// Puts notifications in the outbox inside the caller's transaction.
pub(crate) fn enqueue(conn: &rusqlite::Connection, entries: &[OutboxEntry]) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (subscription_arn, protocol, endpoint, body, headers, message_id, due_ms, attempts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
    )?;
    for e in entries {
        insert.execute(params![
            e.subscription_arn,
            e.protocol,
            e.endpoint,
            e.body,
            encode(&e.headers)?,
            e.message_id,
            e.due_ms
        ])?;
    }
    Ok(())
}

const TOPIC_COLUMNS: &str = "arn, account, region, name, attributes, tags";

fn read_topic(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, String, String, String)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode_topic(
    (arn, account, region, name, attributes, tags): (
        String,
        String,
        String,
        String,
        String,
        String,
    ),
) -> Result<Topic> {
    Ok(Topic {
        attributes: decode_map(&attributes, &format!("the attributes of topic {arn}"))?,
        tags: decode_map(&tags, &format!("the tags of topic {arn}"))?,
        arn,
        account,
        region,
        name,
    })
}

const SUBSCRIPTION_COLUMNS: &str =
    "arn, topic_arn, account, protocol, endpoint, attributes, confirmed, authenticated, token";

type SubscriptionRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    bool,
    bool,
    String,
);

fn read_subscription(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn decode_subscription(row: SubscriptionRow) -> Result<Subscription> {
    let (arn, topic_arn, account, protocol, endpoint, attributes, confirmed, authenticated, token) =
        row;
    Ok(Subscription {
        attributes: decode_map(
            &attributes,
            &format!("the attributes of subscription {arn}"),
        )?,
        arn,
        topic_arn,
        account,
        protocol,
        endpoint,
        confirmed,
        authenticated,
        token,
    })
}

impl Monitor {
    /// Creates a topic, or returns the existing one of that name when its
    /// attributes and tags are those asked for (SNS's CreateTopic is
    /// idempotent); [`Error::Invalid`] when they differ.
    pub fn create_topic(&self, topic: &Topic) -> Result<Topic> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE arn = ?1");
        if let Some(row) = tx.query_row(&sql, [&topic.arn], read_topic).optional()? {
            let existing = decode_topic(row)?;
            let same_attributes = topic
                .attributes
                .iter()
                .all(|(k, v)| existing.attributes.get(k) == Some(v));
            let same_tags = topic
                .tags
                .iter()
                .all(|(k, v)| existing.tags.get(k) == Some(v));
            if !same_attributes {
                return Err(Error::Invalid(
                    "Invalid parameter: Attributes Reason: Topic already exists with different attributes"
                        .into(),
                ));
            }
            if !same_tags {
                return Err(Error::Invalid(
                    "Invalid parameter: Tags Reason: Topic already exists with different tags"
                        .into(),
                ));
            }
            return Ok(existing);
        }
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM topics WHERE account = ?1",
            [&topic.account],
            |r| r.get(0),
        )?;
        if count >= MAX_TOPICS {
            return Err(Error::LimitExceeded("Topic limit exceeded".into()));
        }
        tx.execute(
            "INSERT INTO topics (arn, account, region, name, attributes, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                topic.arn,
                topic.account,
                topic.region,
                topic.name,
                encode(&topic.attributes)?,
                encode(&topic.tags)?
            ],
        )?;
        tx.commit()?;
        Ok(topic.clone())
    }

    /// A topic by ARN.
    pub fn topic(&self, arn: &str) -> Result<Option<Topic>> {
        let conn = self.conn();
        let sql = format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE arn = ?1");
        conn.query_row(&sql, [arn], read_topic)
            .optional()?
            .map(decode_topic)
            .transpose()
    }

    /// The topics of an account in a region after the ARN `after`, at most
    /// `limit`, with the ARN to go on after when more remain.
    pub fn topics(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Topic>, Option<String>)> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {TOPIC_COLUMNS} FROM topics WHERE account = ?1 AND region = ?2 AND arn > ?3 ORDER BY arn LIMIT ?4"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![account, region, after.unwrap_or(""), limit as i64 + 1],
            read_topic,
        )?;
        let mut out = rows
            .map(|r| r.map_err(Error::from).and_then(decode_topic))
            .collect::<Result<Vec<_>>>()?;
        let next = (out.len() > limit).then(|| {
            out.truncate(limit);
            out.last().map(|t| t.arn.clone()).unwrap_or_default()
        });
        Ok((out, next))
    }

    /// Deletes a topic with its subscriptions and their waiting
    /// notifications (deleting a topic that does not exist succeeds, as on
    /// SNS).
    pub fn delete_topic(&self, arn: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM outbox WHERE subscription_arn IN (SELECT arn FROM subscriptions WHERE topic_arn = ?1)",
            [arn],
        )?;
        tx.execute("DELETE FROM subscriptions WHERE topic_arn = ?1", [arn])?;
        tx.execute("DELETE FROM topics WHERE arn = ?1", [arn])?;
        tx.commit()?;
        Ok(())
    }

    /// Sets (an empty value removes) a topic attribute.
    pub fn set_topic_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        self.change_topic(arn, |t| {
            if value.is_empty() {
                t.attributes.remove(name);
            } else {
                t.attributes.insert(name.to_owned(), value.to_owned());
            }
            Ok(())
        })
    }

    /// Adds and removes a topic's tags; at most 50.
    pub fn change_topic_tags(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<()> {
        self.change_topic(arn, |t| {
            t.tags
                .extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
            for k in remove {
                t.tags.remove(k);
            }
            if t.tags.len() > 50 {
                return Err(Error::LimitExceeded(
                    "Could not complete request: tag quota of per resource exceeded".into(),
                ));
            }
            Ok(())
        })
    }

    fn change_topic(&self, arn: &str, change: impl FnOnce(&mut Topic) -> Result<()>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE arn = ?1");
        let mut topic = tx
            .query_row(&sql, [arn], read_topic)
            .optional()?
            .map(decode_topic)
            .transpose()?
            .ok_or_else(|| Error::NotFound("Topic does not exist".into()))?;
        change(&mut topic)?;
        tx.execute(
            "UPDATE topics SET attributes = ?1, tags = ?2 WHERE arn = ?3",
            params![encode(&topic.attributes)?, encode(&topic.tags)?, arn],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Adds a subscription, or returns the topic's existing subscription to
    /// the same protocol and endpoint (SNS answers the same ARN again). A
    /// new one that needs confirming gets its confirmation request put in
    /// the outbox by `confirmation` in the same transaction.
    pub fn subscribe(
        &self,
        subscription: &Subscription,
        confirmation: Option<&OutboxEntry>,
    ) -> Result<Subscription> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE topic_arn = ?1 AND protocol = ?2 AND endpoint = ?3"
        );
        if let Some(row) = tx
            .query_row(
                &sql,
                params![
                    subscription.topic_arn,
                    subscription.protocol,
                    subscription.endpoint
                ],
                read_subscription,
            )
            .optional()?
        {
            return decode_subscription(row);
        }
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM subscriptions WHERE topic_arn = ?1",
            [&subscription.topic_arn],
            |r| r.get(0),
        )?;
        if count >= MAX_SUBSCRIPTIONS_PER_TOPIC {
            return Err(Error::LimitExceeded("Subscription limit exceeded".into()));
        }
        tx.execute(
            "INSERT INTO subscriptions (arn, topic_arn, account, protocol, endpoint, attributes, confirmed, authenticated, token) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                subscription.arn,
                subscription.topic_arn,
                subscription.account,
                subscription.protocol,
                subscription.endpoint,
                encode(&subscription.attributes)?,
                subscription.confirmed,
                subscription.authenticated,
                subscription.token
            ],
        )?;
        if let Some(entry) = confirmation {
            enqueue(&tx, std::slice::from_ref(entry))?;
        }
        tx.commit()?;
        Ok(subscription.clone())
    }

    /// Confirms the subscription of `topic_arn` holding `token`; returns it.
    pub fn confirm_subscription(
        &self,
        topic_arn: &str,
        token: &str,
        authenticated: bool,
    ) -> Result<Subscription> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE topic_arn = ?1 AND token = ?2"
        );
        let mut subscription = tx
            .query_row(&sql, params![topic_arn, token], read_subscription)
            .optional()?
            .map(decode_subscription)
            .transpose()?
            .ok_or_else(|| Error::Invalid("Invalid token".into()))?;
        if !subscription.confirmed {
            subscription.confirmed = true;
            subscription.authenticated = authenticated;
            tx.execute(
                "UPDATE subscriptions SET confirmed = 1, authenticated = ?1 WHERE arn = ?2",
                params![authenticated, subscription.arn],
            )?;
        }
        tx.commit()?;
        Ok(subscription)
    }

    /// A subscription by ARN.
    pub fn subscription(&self, arn: &str) -> Result<Option<Subscription>> {
        let conn = self.conn();
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE arn = ?1");
        conn.query_row(&sql, [arn], read_subscription)
            .optional()?
            .map(decode_subscription)
            .transpose()
    }

    /// Subscriptions of an account (of one topic, when given) after the ARN
    /// `after`, at most `limit`, with the ARN to go on after.
    pub fn subscriptions(
        &self,
        account: &str,
        topic_arn: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Subscription>, Option<String>)> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE (?1 IS NULL OR topic_arn = ?1) AND (?1 IS NOT NULL OR account = ?2) AND arn > ?3 \
             ORDER BY arn LIMIT ?4"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![topic_arn, account, after.unwrap_or(""), limit as i64 + 1],
            read_subscription,
        )?;
        let mut out = rows
            .map(|r| r.map_err(Error::from).and_then(decode_subscription))
            .collect::<Result<Vec<_>>>()?;
        let next = (out.len() > limit).then(|| {
            out.truncate(limit);
            out.last().map(|s| s.arn.clone()).unwrap_or_default()
        });
        Ok((out, next))
    }

    /// How many subscriptions of a topic are confirmed, and how many wait
    /// for confirmation.
    pub fn subscription_counts(&self, topic_arn: &str) -> Result<(u64, u64)> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(SUM(confirmed), 0), COUNT(*) - COALESCE(SUM(confirmed), 0) \
             FROM subscriptions WHERE topic_arn = ?1",
            [topic_arn],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// Removes a subscription and its waiting notifications.
    pub fn unsubscribe(&self, arn: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM outbox WHERE subscription_arn = ?1", [arn])?;
        let removed = tx.execute("DELETE FROM subscriptions WHERE arn = ?1", [arn])?;
        if removed == 0 {
            return Err(Error::NotFound("Subscription does not exist".into()));
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets (an empty value removes) a subscription attribute.
    pub fn set_subscription_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE arn = ?1");
        let mut subscription = tx
            .query_row(&sql, [arn], read_subscription)
            .optional()?
            .map(decode_subscription)
            .transpose()?
            .ok_or_else(|| Error::NotFound("Subscription does not exist".into()))?;
        if value.is_empty() {
            subscription.attributes.remove(name);
        } else {
            subscription
                .attributes
                .insert(name.to_owned(), value.to_owned());
        }
        tx.execute(
            "UPDATE subscriptions SET attributes = ?1 WHERE arn = ?2",
            params![encode(&subscription.attributes)?, arn],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Publishes: `build` makes the notification of each confirmed
    /// subscription of the topic, and all go in the outbox in one
    /// transaction. Returns how many.
    pub fn publish(
        &self,
        topic_arn: &str,
        build: &dyn Fn(&Subscription) -> Result<OutboxEntry>,
    ) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let entries = confirmed_fan_out(&tx, topic_arn, build)?;
        enqueue(&tx, &entries)?;
        tx.commit()?;
        Ok(entries.len())
    }

    /// The confirmed subscriptions of a topic (for fan-out inside another
    /// transaction, see [`Monitor::record_state_change`]).
    pub fn confirmed_subscriptions(&self, topic_arn: &str) -> Result<Vec<Subscription>> {
        let conn = self.conn();
        confirmed(&conn, topic_arn)
    }

    /// Notifications due at `now_ms`, oldest first, at most `limit`.
    pub fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<PendingDelivery>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, subscription_arn, protocol, endpoint, body, headers, message_id, due_ms, attempts \
             FROM outbox WHERE due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, u32>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                subscription_arn,
                protocol,
                endpoint,
                body,
                headers,
                message_id,
                due_ms,
                attempts,
            ) = row?;
            let headers: Vec<(String, String)> =
                serde_json::from_str(&headers).map_err(|e| Error::Corrupt {
                    what: format!("outbox entry {id}"),
                    reason: e.to_string(),
                })?;
            out.push(PendingDelivery {
                id,
                entry: OutboxEntry {
                    subscription_arn,
                    protocol,
                    endpoint,
                    body,
                    headers,
                    message_id,
                    due_ms,
                },
                attempts,
            });
        }
        Ok(out)
    }

    /// When the next waiting notification is due, if any.
    pub fn next_delivery_due(&self) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row("SELECT MIN(due_ms) FROM outbox", [], |r| r.get(0))?)
    }

    /// Removes a delivered (or given-up) notification.
    pub fn finish_delivery(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Schedules a failed notification's next attempt.
    pub fn retry_delivery(&self, id: i64, attempts: u32, due_ms: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET attempts = ?1, due_ms = ?2 WHERE id = ?3",
            params![attempts, due_ms, id],
        )?;
        Ok(())
    }

    /// How many notifications wait.
    pub fn pending_deliveries(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}

fn confirmed(conn: &rusqlite::Connection, topic_arn: &str) -> Result<Vec<Subscription>> {
    let sql = format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE topic_arn = ?1 AND confirmed = 1 ORDER BY arn"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([topic_arn], read_subscription)?;
    rows.map(|r| r.map_err(Error::from).and_then(decode_subscription))
        .collect()
}

/// The notifications of a topic's confirmed subscriptions.
pub(crate) fn confirmed_fan_out(
    conn: &rusqlite::Connection,
    topic_arn: &str,
    build: &dyn Fn(&Subscription) -> Result<OutboxEntry>,
) -> Result<Vec<OutboxEntry>> {
    confirmed(conn, topic_arn)?.iter().map(build).collect()
}
