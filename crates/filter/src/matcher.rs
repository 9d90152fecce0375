//! The compiled form of a pattern and the matching itself.
//!
//! Compilation turns every string value into a [`Wildcard`] with prefix,
//! suffix and substring fast paths, every phrase into a `memmem` finder and
//! every regex into a `regex::Regex`, so that matching allocates nothing on
//! the common path.

use memchr::memmem::Finder;
use regex::Regex;
use serde_json::Value as Json;

use crate::ast::{
    Expr, FieldComparison, JsonCondition, JsonTest, Op, Pattern, Segment, Slot, TermMode, TermText,
    Value,
};
use crate::error::{PatternError, PatternErrorKind};
use crate::event::LogEvent;
use crate::parse::{build_regex, parse_number};

/// A string test with `*` wildcards, specialised by shape.
#[derive(Debug, Clone)]
pub(crate) enum Wildcard {
    /// `*`: any text.
    Any,
    /// No `*`.
    Exact(String),
    /// `abc*`
    Prefix(String),
    /// `*abc`
    Suffix(String),
    /// `*abc*`
    Contains(Box<Finder<'static>>),
    /// Anything else: `a*b*c`; the middle parts are found left to right.
    General {
        prefix: String,
        middle: Vec<Finder<'static>>,
        suffix: String,
    },
}

impl Wildcard {
    pub(crate) fn new(text: &str) -> Self {
        if !text.contains('*') {
            return Wildcard::Exact(text.to_owned());
        }
        let parts: Vec<&str> = text.split('*').collect();
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        let middle: Vec<&str> = parts[1..parts.len() - 1]
            .iter()
            .copied()
            .filter(|p| !p.is_empty())
            .collect();
        match (first.is_empty(), middle.as_slice(), last.is_empty()) {
            (true, [], true) => Wildcard::Any,
            (false, [], true) => Wildcard::Prefix(first.to_owned()),
            (true, [], false) => Wildcard::Suffix(last.to_owned()),
            (true, [one], true) => {
                Wildcard::Contains(Box::new(Finder::new(one.as_bytes()).into_owned()))
            }
            _ => Wildcard::General {
                prefix: first.to_owned(),
                middle: middle
                    .iter()
                    .map(|m| Finder::new(m.as_bytes()).into_owned())
                    .collect(),
                suffix: last.to_owned(),
            },
        }
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            Wildcard::Any => true,
            Wildcard::Exact(e) => s == e,
            Wildcard::Prefix(p) => s.starts_with(p.as_str()),
            Wildcard::Suffix(x) => s.ends_with(x.as_str()),
            Wildcard::Contains(f) => f.find(s.as_bytes()).is_some(),
            Wildcard::General {
                prefix,
                middle,
                suffix,
            } => {
                if s.len() < prefix.len() + suffix.len()
                    || !s.starts_with(prefix.as_str())
                    || !s.ends_with(suffix.as_str())
                {
                    return false;
                }
                let mut rest = &s.as_bytes()[prefix.len()..s.len() - suffix.len()];
                for finder in middle {
                    match finder.find(rest) {
                        Some(at) => rest = &rest[at + finder.needle().len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

/// A compiled comparison value.
#[derive(Debug, Clone)]
pub(crate) enum CValue {
    /// An unquoted number: numeric comparison; `text` for a string fallback.
    Number { value: f64, text: String },
    /// A string with wildcards.
    Str(Wildcard),
    /// A regex, searched anywhere in the text.
    Regex(Regex),
}

/// What a compared field holds, borrowed from the event.
enum Scalar<'a> {
    /// A JSON number's text is its canonical form (`123`, `1.5`).
    NumberText(&'a serde_json::Number),
    Text(&'a str),
}

impl CValue {
    /// Compares a field value. `None` (missing, null, object, array,
    /// boolean) never matches, `!=` included.
    fn test(&self, op: Op, field: Option<Scalar<'_>>) -> bool {
        let Some(field) = field else { return false };
        match self {
            CValue::Number { value, text } => {
                let number = match &field {
                    Scalar::NumberText(n) => n.as_f64(),
                    Scalar::Text(t) => parse_number(t),
                };
                match number {
                    Some(n) => match op {
                        Op::Eq => n == *value,
                        Op::Ne => n != *value,
                        Op::Lt => n < *value,
                        Op::Le => n <= *value,
                        Op::Gt => n > *value,
                        Op::Ge => n >= *value,
                    },
                    // A non-numeric text against a number: equal only as
                    // text; relational operators need a number.
                    None => match (op, &field) {
                        (Op::Eq, Scalar::Text(t)) => *t == text,
                        (Op::Ne, Scalar::Text(t)) => *t != text,
                        _ => false,
                    },
                }
            }
            CValue::Str(w) => {
                let hit = with_text(&field, |s| w.matches(s));
                match op {
                    Op::Eq => hit,
                    Op::Ne => !hit,
                    // The parser refuses relational operators on strings.
                    _ => false,
                }
            }
            CValue::Regex(r) => {
                let hit = with_text(&field, |s| r.is_match(s));
                match op {
                    Op::Eq => hit,
                    Op::Ne => !hit,
                    _ => false,
                }
            }
        }
    }
}

/// Runs `f` on a scalar's text; a JSON number is formatted into a stack
/// buffer, not a `String`.
fn with_text(field: &Scalar<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    match field {
        Scalar::Text(t) => f(t),
        Scalar::NumberText(n) => {
            let mut buf = StackBuf::default();
            use std::fmt::Write as _;
            if write!(buf, "{n}").is_ok() {
                f(buf.as_str())
            } else {
                f(&n.to_string())
            }
        }
    }
}

/// A small fixed buffer for formatting numbers without allocating.
struct StackBuf {
    bytes: [u8; 64],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written in.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(std::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn compile_value(value: &Value) -> Result<CValue, PatternError> {
    Ok(match value {
        Value::Number { text, value } => CValue::Number {
            value: *value,
            text: text.clone(),
        },
        Value::String { text, .. } => CValue::Str(Wildcard::new(text)),
        Value::Regex(body) => CValue::Regex(compile_regex(body)?),
    })
}

fn compile_regex(body: &str) -> Result<Regex, PatternError> {
    // The parser already built this regex once; this cannot fail unless the
    // AST was built by hand.
    build_regex(body).map_err(|reason| PatternError {
        position: 0,
        kind: PatternErrorKind::InvalidRegex {
            position: 0,
            reason,
        },
    })
}

/// A compiled text search for terms.
#[derive(Debug, Clone)]
pub(crate) enum TextMatcher {
    Substring(Box<Finder<'static>>),
    Regex(Regex),
}

impl TextMatcher {
    fn is_match(&self, message: &str) -> bool {
        match self {
            TextMatcher::Substring(f) => f.find(message.as_bytes()).is_some(),
            TextMatcher::Regex(r) => r.is_match(message),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CJsonCondition {
    path: Vec<Segment>,
    test: CJsonTest,
}

#[derive(Debug, Clone)]
pub(crate) enum CJsonTest {
    Compare(Op, CValue),
    /// `$.x = a || $.x = b || ...` on exact strings, merged: one path
    /// resolution and a binary search instead of one lookup per name
    /// (the CIS filters are mostly this shape). Sorted, deduplicated.
    InSet(Vec<String>),
    IsNull,
    NotExists,
    IsTrue,
    IsFalse,
}

#[derive(Debug, Clone)]
pub(crate) struct CFieldComparison {
    /// The slot whose field is compared.
    slot: usize,
    op: Op,
    value: CValue,
}

#[derive(Debug, Clone)]
pub(crate) struct CSlot {
    ellipsis: bool,
    condition: Option<Expr<CFieldComparison>>,
}

/// The compiled pattern.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    All,
    Terms {
        required: Vec<TextMatcher>,
        excluded: Vec<TextMatcher>,
        optional: Vec<TextMatcher>,
    },
    Json(Expr<CJsonCondition>),
    Delimited(Vec<CSlot>),
}

fn map_expr<A, B>(
    expr: &Expr<A>,
    f: &mut impl FnMut(&A) -> Result<B, PatternError>,
) -> Result<Expr<B>, PatternError> {
    Ok(match expr {
        Expr::Leaf(l) => Expr::Leaf(f(l)?),
        Expr::Or(items) => Expr::Or(
            items
                .iter()
                .map(|i| map_expr(i, f))
                .collect::<Result<_, _>>()?,
        ),
        Expr::And(items) => Expr::And(
            items
                .iter()
                .map(|i| map_expr(i, f))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn eval<L>(expr: &Expr<L>, leaf: &mut impl FnMut(&L) -> bool) -> bool {
    match expr {
        Expr::Leaf(l) => leaf(l),
        Expr::Or(items) => items.iter().any(|i| eval(i, leaf)),
        Expr::And(items) => items.iter().all(|i| eval(i, leaf)),
    }
}

impl Compiled {
    pub(crate) fn new(pattern: &Pattern) -> Result<Self, PatternError> {
        Ok(match pattern {
            Pattern::All => Compiled::All,
            Pattern::Terms(terms) => {
                let (mut required, mut excluded, mut optional) = (vec![], vec![], vec![]);
                for term in terms {
                    let m = match &term.text {
                        TermText::Word(w) | TermText::Phrase(w) => {
                            TextMatcher::Substring(Box::new(Finder::new(w.as_bytes()).into_owned()))
                        }
                        TermText::Regex(r) => TextMatcher::Regex(compile_regex(r)?),
                    };
                    match term.mode {
                        TermMode::Required => required.push(m),
                        TermMode::Excluded => excluded.push(m),
                        TermMode::Optional => optional.push(m),
                    }
                }
                Compiled::Terms {
                    required,
                    excluded,
                    optional,
                }
            }
            Pattern::Json(expr) => Compiled::Json(merge_equalities(map_expr(
                expr,
                &mut |c: &JsonCondition| {
                    Ok(CJsonCondition {
                        path: c.selector.segments.clone(),
                        test: match &c.test {
                            JsonTest::Compare(op, v) => CJsonTest::Compare(*op, compile_value(v)?),
                            JsonTest::IsNull => CJsonTest::IsNull,
                            JsonTest::NotExists => CJsonTest::NotExists,
                            JsonTest::IsTrue => CJsonTest::IsTrue,
                            JsonTest::IsFalse => CJsonTest::IsFalse,
                        },
                    })
                },
            )?)),
            Pattern::Delimited(slots) => {
                let names: Vec<&str> = slots
                    .iter()
                    .map(|s| match s {
                        Slot::Field { name, .. } => name.as_str(),
                        Slot::Ellipsis => "",
                    })
                    .collect();
                let mut out = Vec::with_capacity(slots.len());
                for (at, slot) in slots.iter().enumerate() {
                    out.push(match slot {
                        Slot::Ellipsis => CSlot {
                            ellipsis: true,
                            condition: None,
                        },
                        Slot::Field { condition, .. } => CSlot {
                            ellipsis: false,
                            condition: match condition {
                                None => None,
                                Some(expr) => {
                                    Some(map_expr(expr, &mut |c: &FieldComparison| {
                                        // A comparison reads the field it
                                        // names; an unknown name reads the
                                        // field it is written in.
                                        let slot = if c.name == names[at] {
                                            at
                                        } else {
                                            names.iter().position(|n| *n == c.name).unwrap_or(at)
                                        };
                                        Ok(CFieldComparison {
                                            slot,
                                            op: c.op,
                                            value: compile_value(&c.value)?,
                                        })
                                    })?)
                                }
                            },
                        },
                    });
                }
                Compiled::Delimited(out)
            }
        })
    }

    pub(crate) fn matches(&self, event: &LogEvent<'_>) -> bool {
        match self {
            Compiled::All => true,
            Compiled::Terms {
                required,
                excluded,
                optional,
            } => {
                let m = event.message();
                required.iter().all(|t| t.is_match(m))
                    && !excluded.iter().any(|t| t.is_match(m))
                    && (optional.is_empty() || optional.iter().any(|t| t.is_match(m)))
            }
            Compiled::Json(expr) => match event.json() {
                Some(root) => eval(expr, &mut |c| json_condition(c, root)),
                None => false,
            },
            Compiled::Delimited(slots) => align(slots, event, &mut |_| {}),
        }
    }

    /// For a space-delimited pattern that matches, calls `visit` with each
    /// event field's 0-based index and the slot it fell in.
    pub(crate) fn visit_alignment(
        &self,
        event: &LogEvent<'_>,
        visit: &mut dyn FnMut(FieldPlace),
    ) -> bool {
        match self {
            Compiled::Delimited(slots) => align(slots, event, visit),
            _ => false,
        }
    }
}

/// Merges, inside each `||`, the exact-string equalities on one path into
/// a single set test. `||` has no side effects, so order does not matter.
fn merge_equalities(expr: Expr<CJsonCondition>) -> Expr<CJsonCondition> {
    let items = match expr {
        Expr::Leaf(_) => return expr,
        Expr::And(items) => return Expr::And(items.into_iter().map(merge_equalities).collect()),
        Expr::Or(items) => items,
    };
    let mut out: Vec<Expr<CJsonCondition>> = Vec::with_capacity(items.len());
    for item in items.into_iter().map(merge_equalities) {
        let (path, text) = match item {
            Expr::Leaf(CJsonCondition {
                path,
                test: CJsonTest::Compare(Op::Eq, CValue::Str(Wildcard::Exact(text))),
            }) => (path, text),
            other => {
                out.push(other);
                continue;
            }
        };
        let existing = out.iter_mut().find_map(|e| match e {
            Expr::Leaf(CJsonCondition {
                path: p,
                test: CJsonTest::InSet(set),
            }) if *p == path => Some(set),
            _ => None,
        });
        match existing {
            Some(set) => set.push(text),
            None => out.push(Expr::Leaf(CJsonCondition {
                path,
                test: CJsonTest::InSet(vec![text]),
            })),
        }
    }
    for e in &mut out {
        if let Expr::Leaf(CJsonCondition {
            test: CJsonTest::InSet(set),
            ..
        }) = e
        {
            set.sort_unstable();
            set.dedup();
        }
    }
    if out.len() == 1 {
        out.swap_remove(0)
    } else {
        Expr::Or(out)
    }
}

/// Resolves a JSON path without allocating.
pub(crate) fn resolve<'v>(root: &'v Json, path: &[Segment]) -> Option<&'v Json> {
    let mut v = root;
    for seg in path {
        v = match (seg, v) {
            (Segment::Key(k), Json::Object(map)) => map.get(k.as_str())?,
            (Segment::Index(i), Json::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn json_condition(c: &CJsonCondition, root: &Json) -> bool {
    let found = resolve(root, &c.path);
    match &c.test {
        CJsonTest::NotExists => found.is_none(),
        CJsonTest::IsNull => matches!(found, Some(Json::Null)),
        CJsonTest::IsTrue => matches!(found, Some(Json::Bool(true))),
        CJsonTest::IsFalse => matches!(found, Some(Json::Bool(false))),
        CJsonTest::InSet(set) => match found {
            Some(Json::String(s)) => set.binary_search_by(|e| e.as_str().cmp(s)).is_ok(),
            Some(Json::Number(n)) => with_text(&Scalar::NumberText(n), |s| {
                set.binary_search_by(|e| e.as_str().cmp(s)).is_ok()
            }),
            _ => false,
        },
        CJsonTest::Compare(op, value) => {
            let scalar = match found {
                Some(Json::String(s)) => Some(Scalar::Text(s)),
                Some(Json::Number(n)) => Some(Scalar::NumberText(n)),
                _ => None,
            };
            value.test(*op, scalar)
        }
    }
}

/// Where an event field fell in a space-delimited pattern.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldPlace {
    /// 0-based index of the event field.
    pub(crate) field: usize,
    /// Index of the pattern slot, `None` when an ellipsis took it.
    pub(crate) slot: Option<usize>,
}

/// Aligns the event's fields to the slots and checks every condition.
///
/// Slots are cut into segments at each `...`. The first segment is pinned
/// to the start (unless the pattern opens with `...`), the last to the end
/// (unless it closes with one), and each segment between floats to the
/// leftmost place where its own conditions hold — the usual greedy glob
/// match, which is exact when conditions read only their own field. A
/// condition that reads another field is checked once the alignment is
/// fixed.
fn align(slots: &[CSlot], event: &LogEvent<'_>, visit: &mut dyn FnMut(FieldPlace)) -> bool {
    let n = event.field_count();
    let ellipses = slots.iter().filter(|s| s.ellipsis).count();
    // `starts[k]` is the event index of slot k's field (ellipsis slots
    // unused); computed into a small stack array in the usual case.
    let mut small = [0usize; 16];
    let mut large;
    let starts: &mut [usize] = if slots.len() <= small.len() {
        &mut small[..slots.len()]
    } else {
        large = vec![0usize; slots.len()];
        &mut large
    };

    let fields_needed = slots.len() - ellipses;
    if n < fields_needed || (ellipses == 0 && n != fields_needed) {
        return false;
    }

    // Segments: maximal runs of non-ellipsis slots.
    let first = slots.split(|s| s.ellipsis).next().map_or(0, <[CSlot]>::len);
    let last_len = if ellipses == 0 {
        0
    } else {
        slots
            .split(|s| s.ellipsis)
            .next_back()
            .map_or(0, <[CSlot]>::len)
    };

    // Pin the first segment to the start.
    for (k, s) in starts.iter_mut().enumerate().take(first) {
        *s = k;
    }
    let mut cursor = first;
    if ellipses > 0 {
        // Pin the last segment to the end.
        let last_start_slot = slots.len() - last_len;
        let last_start_field = n - last_len;
        for j in 0..last_len {
            starts[last_start_slot + j] = last_start_field + j;
        }
        // Float the middle segments.
        let mut slot = first + 1;
        while slot < last_start_slot {
            if slots[slot].ellipsis {
                slot += 1;
                continue;
            }
            let seg_end = slots[slot..last_start_slot]
                .iter()
                .position(|s| s.ellipsis)
                .map_or(last_start_slot, |p| slot + p);
            let len = seg_end - slot;
            let mut found = None;
            let mut at = cursor;
            while at + len <= last_start_field {
                let fits = (0..len).all(|j| match &slots[slot + j].condition {
                    None => true,
                    Some(expr) => eval(expr, &mut |c: &CFieldComparison| {
                        if (slot..seg_end).contains(&c.slot) {
                            field_test(c, event.field(at + (c.slot - slot)))
                        } else {
                            true
                        }
                    }),
                });
                if fits {
                    found = Some(at);
                    break;
                }
                at += 1;
            }
            let Some(at) = found else { return false };
            for j in 0..len {
                starts[slot + j] = at + j;
            }
            cursor = at + len;
            slot = seg_end;
        }
        if cursor > last_start_field {
            return false;
        }
    }

    // Every condition, with the alignment fixed.
    let all_hold = slots.iter().all(|s| match &s.condition {
        None => true,
        Some(expr) => eval(expr, &mut |c: &CFieldComparison| {
            field_test(c, event.field(starts[c.slot]))
        }),
    });
    if !all_hold {
        return false;
    }

    // Report which slot each field fell in; the non-ellipsis slots'
    // fields increase strictly, so one pass over both suffices.
    let mut k = 0usize;
    for field in 0..n {
        while k < slots.len() && (slots[k].ellipsis || starts[k] < field) {
            k += 1;
        }
        let slot = (k < slots.len() && starts[k] == field).then_some(k);
        visit(FieldPlace { field, slot });
    }
    true
}

fn field_test(c: &CFieldComparison, text: Option<&str>) -> bool {
    c.value.test(c.op, text.map(Scalar::Text))
}
