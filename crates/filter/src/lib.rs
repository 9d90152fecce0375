//! CloudWatch Logs filter patterns, the language of metric filters,
//! subscription filters, `FilterLogEvents` and `TestMetricFilter`.
//!
//! This crate owns the lexer/parser, the AST and its canonical printing, a
//! compiled matcher, and value extraction for metric filters. It knows
//! nothing of CloudTrail, storage or HTTP.
//!
//! # Grammar
//!
//! The first non-blank character chooses the form:
//!
//! ```text
//! pattern    := ""  | '""'                     -- matches every event
//!             | '{' json-expr '}'               -- JSON
//!             | '[' slot (',' slot)* ']'        -- space-delimited
//!             | term (' ' term)*                -- anything else
//! term       := ('-' | '?')? (word | '"' phrase '"' | '%' regex '%')
//! word       := (letter | digit | '_')+         -- other characters need quotes
//! json-expr  := and ('||' and)*                 -- && binds tighter than ||
//! and        := primary ('&&' primary)*
//! primary    := '(' json-expr ')' | selector op value
//!             | selector 'IS NULL' | selector 'NOT EXISTS'
//!             | selector 'IS TRUE' | selector 'IS FALSE'
//! selector   := '$' ('.' key) ('.' key | '[' digits ']')*   -- key: letters, digits, '-', '_'
//! op         := '=' | '!=' | '<' | '<=' | '>' | '>='
//! value      := number | '"' string '"' | unquoted | '%' regex '%'
//! slot       := '...' | name | field-expr | (empty)
//! field-expr := the json-expr grammar with leaves  name op value
//! ```
//!
//! `*` is a wildcard anywhere in a string value; `= *` matches any string or
//! number. An unquoted value that reads as a number (sign, decimals,
//! exponent) compares numerically (`{ $.n = 123.0 }` matches `"n": 123`); a
//! quoted one compares as text. `<`, `<=`, `>`, `>=` need a number. A
//! comparison against a missing field, `null`, an object, an array or a
//! boolean does not match, `!=` included: `NOT EXISTS` asks for absence.
//!
//! # Use
//!
//! ```
//! use cairn_filter::{FilterPattern, LogEvent};
//!
//! let pattern = FilterPattern::parse(r#"{ $.errorCode = "AccessDenied*" }"#).unwrap();
//! let event = LogEvent::new(r#"{"errorCode": "AccessDeniedException"}"#);
//! assert!(pattern.matches(&event));
//! assert_eq!(pattern.to_string(), r#"{ $.errorCode = "AccessDenied*" }"#);
//! ```
//!
//! A [`LogEvent`] parses its message as JSON at most once and splits it
//! into fields at most once, so many patterns can be matched against one
//! event for the price of one parse. Matching allocates nothing on the
//! common path: selectors are pre-split, wildcards compiled into
//! prefix/suffix/substring tests, phrases into `memmem` finders, and the
//! exact-string equalities on one selector inside an `||` (the shape of
//! most CIS filters) merged into one lookup and a binary search. On the
//! generated CloudTrail records the 14 CIS filters of
//! `monitoring/cis-aws-foundations.json` together cost 0.1–0.3 of the JSON
//! parse (`bench/filters.py`, `examples/cis_bench.rs`).
//!
//! # Where Cairn chose, AWS being silent
//!
//! * Term matching is a case-sensitive substring search; `?` terms are an
//!   OR group that must have one hit, next to any required and excluded
//!   terms.
//! * Regexes are searched anywhere in the text (anchor with `^`/`$`); they
//!   may hold only AWS's documented characters (letters, digits,
//!   `: _ # = @ / ; , -` and `^ $ ? [ ] { } | \ * + .`), so no parentheses,
//!   spaces or multi-byte characters; at most two in a JSON or
//!   space-delimited pattern.
//! * An unquoted number compared with `=`/`!=` to a string that does not
//!   read as a number compares as text.
//! * In a space-delimited condition that names another field
//!   (`[a, b = 1 && a = 2]`) the comparison reads that field; an unknown
//!   name reads the field it is written in. With several `...`, fields are
//!   aligned leftmost-first.
//! * Parentheses nest at most 32 deep.
//! * `- term` with a space is read as `-term` (AWS's guide writes
//!   `"ERROR" - "Exiting"`).
//! * TestMetricFilter's `extractedValues` ([`FilterPattern::extracted_values`])
//!   holds every event field of a space-delimited match, keyed `$name` or
//!   `$N`, and is empty for other patterns, as AWS's guide says;
//!   [`FilterPattern::json_values`] gives what a JSON pattern's selectors
//!   point at.

mod ast;
mod error;
mod event;
mod matcher;
mod metric;
mod parse;
mod projection;

#[cfg(test)]
mod tests;

use std::fmt::{self, Display, Formatter};
use std::str::FromStr;

pub use ast::{
    Expr, FieldComparison, JsonCondition, JsonTest, Op, Pattern, Segment, Selector, Slot, Term,
    TermMode, TermText, Value,
};
pub use error::{
    MAX_NESTING, MAX_PATTERN_CHARS, MAX_REGEX_PER_PATTERN, PatternError, PatternErrorKind,
};
pub use event::LogEvent;
pub use metric::{Extracted, FieldRef, MetricValue};
pub use projection::Projection;

use matcher::Compiled;

/// A parsed and compiled filter pattern, ready to match many events.
#[derive(Debug, Clone)]
pub struct FilterPattern {
    ast: Pattern,
    compiled: Compiled,
}

impl FilterPattern {
    /// Parses and compiles a filter pattern; the error's `Display` is the
    /// `InvalidParameterException` message.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        Self::from_ast(parse::parse(pattern)?)
    }

    /// Compiles a pattern built by hand.
    pub fn from_ast(ast: Pattern) -> Result<Self, PatternError> {
        let compiled = Compiled::new(&ast)?;
        Ok(Self { ast, compiled })
    }

    /// The parsed form.
    pub fn ast(&self) -> &Pattern {
        &self.ast
    }

    pub(crate) fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// Whether the event matches.
    pub fn matches(&self, event: &LogEvent<'_>) -> bool {
        self.compiled.matches(event)
    }

    /// Whether a message matches (parses it for this pattern alone; prefer
    /// [`LogEvent`] when several patterns look at one message).
    pub fn matches_message(&self, message: &str) -> bool {
        self.matches(&LogEvent::new(message))
    }
}

impl PartialEq for FilterPattern {
    fn eq(&self, other: &Self) -> bool {
        self.ast == other.ast
    }
}

impl Display for FilterPattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.ast.fmt(f)
    }
}

impl FromStr for FilterPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
