//! Values taken out of a matching event: metric values, dimensions and
//! TestMetricFilter's `extractedValues`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};

use crate::FilterPattern;
use crate::ast::{Expr, JsonCondition, Pattern, Selector, Slot};
use crate::error::{PatternError, PatternErrorKind};
use crate::event::LogEvent;
use crate::parse::parse_number;

/// A reference to a value of the event: `$.a.b[0]` for JSON patterns,
/// `$name` (a named field) or `$3` (the third event field) for
/// space-delimited ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// A JSON selector.
    Json(Selector),
    /// A space-delimited field by name.
    Named(String),
    /// A space-delimited field by 1-based position in the event.
    Position(usize),
}

impl FieldRef {
    /// Reads `$.selector`, `$name` or `$N`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix('$')?;
        if rest.starts_with('.') {
            // Reuse the pattern parser on a one-condition JSON pattern.
            let probe = format!("{{ {text} NOT EXISTS }}");
            return match crate::parse::parse(&probe).ok()? {
                Pattern::Json(Expr::Leaf(JsonCondition { selector, .. })) => {
                    Some(FieldRef::Json(selector))
                }
                _ => None,
            };
        }
        if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        match rest.parse::<usize>() {
            Ok(0) => None,
            Ok(n) => Some(FieldRef::Position(n)),
            Err(_) => Some(FieldRef::Named(rest.to_owned())),
        }
    }
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::Json(s) => write!(f, "{s}"),
            FieldRef::Named(n) => write!(f, "${n}"),
            FieldRef::Position(p) => write!(f, "${p}"),
        }
    }
}

/// A value read from an event, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extracted<'e> {
    /// A string (a JSON string, or a space-delimited field).
    Text(&'e str),
    /// A JSON number.
    Number(&'e serde_json::Number),
    /// A JSON boolean.
    Bool(bool),
}

impl Extracted<'_> {
    /// The value as a number: a JSON number, or text that reads as one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Extracted::Text(t) => parse_number(t.trim()),
            Extracted::Number(n) => n.as_f64(),
            Extracted::Bool(_) => None,
        }
    }

    /// The value as text, as a dimension value or `extractedValues` shows it.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Extracted::Text(t) => Cow::Borrowed(t),
            Extracted::Number(n) => Cow::Owned(n.to_string()),
            Extracted::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

/// A metric filter's `metricValue`: a number, or a field of the event.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// A constant such as `1`.
    Literal(f64),
    /// A field the pattern references.
    Field(FieldRef),
}

impl MetricValue {
    /// Reads a `metricValue` for this pattern: a number, `$.x` naming a
    /// selector of a JSON pattern, or `$name` naming a field of a
    /// space-delimited pattern (or `$N`).
    pub fn parse(text: &str, pattern: &FilterPattern) -> Result<Self, PatternError> {
        if let Some(n) = parse_number(text.trim()) {
            return Ok(MetricValue::Literal(n));
        }
        Ok(MetricValue::Field(pattern.field_ref(text)?))
    }

    /// The value for an event, `None` when the pattern does not match it or
    /// the field is missing or not numeric.
    pub fn value(&self, pattern: &FilterPattern, event: &LogEvent<'_>) -> Option<f64> {
        match self {
            MetricValue::Literal(n) => pattern.matches(event).then_some(*n),
            MetricValue::Field(field) => pattern.extract(event, field)?.as_f64(),
        }
    }
}

impl FilterPattern {
    /// Checks that `text` is a field reference this pattern can supply (a
    /// selector the JSON pattern uses, a field the space-delimited pattern
    /// names, or a field position), for `metricValue` and dimension values.
    pub fn field_ref(&self, text: &str) -> Result<FieldRef, PatternError> {
        let refuse = |reason| PatternError {
            position: 0,
            kind: PatternErrorKind::InvalidMetricValue {
                value: text.to_owned(),
                reason,
            },
        };
        let Some(field) = FieldRef::parse(text.trim()) else {
            return Err(refuse("expected a number, $.selector or $field"));
        };
        let known = match (&field, self.ast()) {
            (FieldRef::Json(sel), Pattern::Json(expr)) => selectors(expr).any(|s| s == sel),
            (FieldRef::Named(name), Pattern::Delimited(slots)) => slots
                .iter()
                .any(|s| matches!(s, Slot::Field { name: n, .. } if n == name)),
            (FieldRef::Position(_), Pattern::Delimited(_)) => true,
            _ => false,
        };
        if known {
            Ok(field)
        } else {
            Err(refuse("the filter pattern does not reference this field"))
        }
    }

    /// The value of `field` in `event` when the pattern matches it.
    pub fn extract<'e>(&self, event: &'e LogEvent<'_>, field: &FieldRef) -> Option<Extracted<'e>> {
        if !self.matches(event) {
            return None;
        }
        match field {
            FieldRef::Json(selector) => {
                match crate::matcher::resolve(event.json()?, &selector.segments)? {
                    serde_json::Value::String(s) => Some(Extracted::Text(s)),
                    serde_json::Value::Number(n) => Some(Extracted::Number(n)),
                    serde_json::Value::Bool(b) => Some(Extracted::Bool(*b)),
                    _ => None,
                }
            }
            FieldRef::Position(p) => event.field(p.checked_sub(1)?).map(Extracted::Text),
            FieldRef::Named(name) => {
                let Pattern::Delimited(slots) = self.ast() else {
                    return None;
                };
                let mut found = None;
                self.compiled().visit_alignment(event, &mut |place| {
                    if let Some(slot) = place.slot
                        && found.is_none()
                        && matches!(&slots[slot], Slot::Field { name: n, .. } if n == name)
                    {
                        found = Some(place.field);
                    }
                });
                event.field(found?).map(Extracted::Text)
            }
        }
    }

    /// TestMetricFilter's `extractedValues` for a matching event, `None`
    /// when it does not match.
    ///
    /// For a space-delimited pattern every event field appears, keyed
    /// `$name` when a named slot took it and `$N` (1-based) otherwise, as
    /// AWS documents; for terms and JSON patterns the map is empty, as AWS
    /// documents ("if you are not using a space-delimited filter, this will
    /// be empty"). [`FilterPattern::json_values`] gives the selected JSON
    /// values instead.
    pub fn extracted_values(&self, event: &LogEvent<'_>) -> Option<BTreeMap<String, String>> {
        let Pattern::Delimited(slots) = self.ast() else {
            return self.matches(event).then(BTreeMap::new);
        };
        let mut out = BTreeMap::new();
        let matched = self.compiled().visit_alignment(event, &mut |place| {
            let key = match place.slot.map(|s| &slots[s]) {
                Some(Slot::Field { name, .. }) if !name.is_empty() => format!("${name}"),
                _ => format!("${}", place.field + 1),
            };
            let value = event.field(place.field).unwrap_or_default().to_owned();
            out.insert(key, value);
        });
        matched.then_some(out)
    }

    /// For a JSON pattern that matches, each selector it uses (printed, as
    /// `$.a.b`) with the event's value there when that is a string, number
    /// or boolean; `None` when it does not match or is not a JSON pattern.
    pub fn json_values(&self, event: &LogEvent<'_>) -> Option<BTreeMap<String, String>> {
        let Pattern::Json(expr) = self.ast() else {
            return None;
        };
        if !self.matches(event) {
            return None;
        }
        let root = event.json()?;
        let mut out = BTreeMap::new();
        for selector in selectors(expr) {
            let text = match crate::matcher::resolve(root, &selector.segments) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    v.to_string()
                }
                _ => continue,
            };
            out.insert(selector.to_string(), text);
        }
        Some(out)
    }
}

/// Every selector of a JSON pattern, in order (repeats included).
fn selectors(expr: &Expr<JsonCondition>) -> Box<dyn Iterator<Item = &Selector> + '_> {
    match expr {
        Expr::Leaf(c) => Box::new(std::iter::once(&c.selector)),
        Expr::Or(items) | Expr::And(items) => Box::new(items.iter().flat_map(selectors)),
    }
}
