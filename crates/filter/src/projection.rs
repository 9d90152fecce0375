//! Parsing only what a set of patterns reads.
//!
//! Matching many JSON patterns against one event costs one parse of the
//! message, and that parse dominates: a CloudTrail record is a kilobyte or
//! more, while the CIS filters read a handful of its top-level members. A
//! [`Projection`] names the top-level members a set of patterns selects
//! into, and builds each event's JSON from those members alone, skipping
//! the rest without allocating (it is still validated as JSON). Every
//! pattern of the set matches the projected event exactly as it matches
//! the whole one: a selector's first step is always a top-level key, and
//! all of those are kept.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::ast::{Expr, JsonCondition, Pattern, Segment};
use crate::{FilterPattern, LogEvent};

/// The top-level JSON members a set of patterns reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    roots: BTreeSet<String>,
}

fn roots_of(expr: &Expr<JsonCondition>, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Leaf(c) => {
            if let Some(Segment::Key(key)) = c.selector.segments.first() {
                out.insert(key.clone());
            }
        }
        Expr::Or(items) | Expr::And(items) => {
            for item in items {
                roots_of(item, out);
            }
        }
    }
}

impl Projection {
    /// What `patterns` read of a JSON message.
    pub fn of<'p>(patterns: impl IntoIterator<Item = &'p FilterPattern>) -> Self {
        let mut roots = BTreeSet::new();
        for pattern in patterns {
            match pattern.ast() {
                Pattern::Json(expr) => roots_of(expr, &mut roots),
                Pattern::Terms(_) | Pattern::Delimited(_) | Pattern::All => {}
            }
        }
        Self { roots }
    }

    /// Whether the patterns read any JSON at all.
    pub fn reads_json(&self) -> bool {
        !self.roots.is_empty()
    }

    /// The event of a message, its JSON cut down to the members the
    /// patterns read. A message that is not a JSON object is left to
    /// [`LogEvent::new`] (no JSON pattern can match it).
    pub fn event<'m>(&self, message: &'m str) -> LogEvent<'m> {
        if !self.reads_json() || !message.trim_start().starts_with('{') {
            return LogEvent::new(message);
        }
        let mut de = serde_json::Deserializer::from_str(message);
        let projected = Roots(&self.roots)
            .deserialize(&mut de)
            .and_then(|map| de.end().map(|()| map));
        match projected {
            Ok(map) => LogEvent::with_json(message, Value::Object(map)),
            Err(_) => LogEvent::new(message),
        }
    }
}

struct Roots<'r>(&'r BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Roots<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Roots<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if self.0.contains(key.as_ref()) {
                // A repeated key: the last wins, as in a whole parse.
                out.insert(key.into_owned(), map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(texts: &[&str]) -> Vec<FilterPattern> {
        texts
            .iter()
            .map(|t| FilterPattern::parse(t).expect("pattern"))
            .collect()
    }

    #[test]
    fn test_a_projected_event_matches_as_the_whole_one() {
        let set = patterns(&[
            r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS }"#,
            r#"{ $.errorCode = "AccessDenied*" }"#,
            r#"{ $.a[1].b = 2 }"#,
            "ERROR",
        ]);
        let projection = Projection::of(&set);
        assert!(projection.reads_json());
        for message in [
            r#"{"userIdentity":{"type":"Root"},"requestParameters":{"big":[1,2,3]},"errorCode":"AccessDeniedX"}"#,
            r#"{"userIdentity":{"type":"Root","invokedBy":"x"},"a":[{"b":1},{"b":2}]}"#,
            r#"{"errorCode":"Nope","errorCode":"AccessDenied"}"#,
            r#"{"eventName":"ERROR é"}"#,
            "plain ERROR text",
            "[1, 2]",
            "{not json",
        ] {
            let whole = LogEvent::new(message);
            let projected = projection.event(message);
            for p in &set {
                assert_eq!(p.matches(&whole), p.matches(&projected), "{p} on {message}");
            }
        }
    }

    #[test]
    fn test_patterns_without_json_read_none() {
        let set = patterns(&["ERROR", "[ip, user, status = 4*]", ""]);
        assert!(!Projection::of(&set).reads_json());
    }
}
