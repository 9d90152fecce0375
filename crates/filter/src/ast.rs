//! The parsed form of a filter pattern, and its canonical printing.
//!
//! `Display` prints a form that parses back to an equal value: nested
//! `&&`/`||` groups are always parenthesised, quoted strings re-escaped, and
//! numbers keep the text they were written with.

use std::fmt::{self, Display, Formatter, Write as _};

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The empty pattern (or `""`): matches every event.
    All,
    /// Terms on unstructured text.
    Terms(Vec<Term>),
    /// `{ ... }`: conditions on a JSON event.
    Json(Expr<JsonCondition>),
    /// `[ ... ]`: the fields of a space-delimited event.
    Delimited(Vec<Slot>),
}

/// How a term takes part in a terms pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermMode {
    /// A bare term: must occur.
    Required,
    /// `-term`: must not occur.
    Excluded,
    /// `?term`: at least one of the `?` terms must occur.
    Optional,
}

/// What a term looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermText {
    /// A bare word (letters, digits, `_`).
    Word(String),
    /// `"an exact phrase"`, stored unescaped.
    Phrase(String),
    /// `%regex%`, stored without the `%`.
    Regex(String),
}

/// One term of a terms pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Required, excluded or optional.
    pub mode: TermMode,
    /// What it looks for.
    pub text: TermText,
}

/// A boolean combination of conditions; `&&` binds tighter than `||`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<L> {
    /// Any of (at least two).
    Or(Vec<Expr<L>>),
    /// All of (at least two).
    And(Vec<Expr<L>>),
    /// One condition.
    Leaf(L),
}

/// One step of a JSON selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `.name`
    Key(String),
    /// `[n]`
    Index(usize),
}

/// A JSON selector such as `$.a.b[0]`, pre-split into its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The steps from the root; the first is always a key.
    pub segments: Vec<Segment>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The value side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unquoted number, compared numerically; `text` is as written.
    Number {
        /// The literal as written (`150.0`, `+1000`, `10e3`).
        text: String,
        /// Its value.
        value: f64,
    },
    /// A string, `*` being a wildcard anywhere in it.
    String {
        /// The text, unescaped.
        text: String,
        /// Whether it was written in double quotes.
        quoted: bool,
    },
    /// `%regex%`, stored without the `%`.
    Regex(String),
}

/// What a JSON condition tests.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTest {
    /// `SELECTOR OP VALUE`
    Compare(Op, Value),
    /// `IS NULL`
    IsNull,
    /// `NOT EXISTS`
    NotExists,
    /// `IS TRUE`
    IsTrue,
    /// `IS FALSE`
    IsFalse,
}

/// One condition of a JSON pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCondition {
    /// The field tested.
    pub selector: Selector,
    /// The test.
    pub test: JsonTest,
}

/// One comparison inside a space-delimited field: `name OP value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldComparison {
    /// The field it reads (usually the field it is written in).
    pub name: String,
    /// The operator.
    pub op: Op,
    /// The value.
    pub value: Value,
}

/// One position of a space-delimited pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// `...`: any number of fields.
    Ellipsis,
    /// A field, named or not (an empty slot, as in `[a, , b]` or a trailing comma).
    Field {
        /// Its name; empty for an unnamed slot. With a condition it is the
        /// name of the condition's first comparison, since the printed form
        /// carries only the condition.
        name: String,
        /// Conditions on it, if any.
        condition: Option<Expr<FieldComparison>>,
    },
}

impl Display for Pattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::All => Ok(()),
            Pattern::Terms(terms) => {
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        f.write_char(' ')?;
                    }
                    write!(f, "{term}")?;
                }
                Ok(())
            }
            Pattern::Json(expr) => write!(f, "{{ {expr} }}"),
            Pattern::Delimited(slots) => {
                f.write_char('[')?;
                for (i, slot) in slots.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{slot}")?;
                }
                f.write_char(']')
            }
        }
    }
}

impl Display for Term {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.mode {
            TermMode::Required => {}
            TermMode::Excluded => f.write_char('-')?,
            TermMode::Optional => f.write_char('?')?,
        }
        match &self.text {
            TermText::Word(w) => f.write_str(w),
            TermText::Phrase(p) => write_quoted(f, p),
            TermText::Regex(r) => write!(f, "%{r}%"),
        }
    }
}

impl<L: Display> Display for Expr<L> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (items, sep) = match self {
            Expr::Leaf(leaf) => return write!(f, "{leaf}"),
            Expr::Or(items) => (items, " || "),
            Expr::And(items) => (items, " && "),
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            // A nested group is always bracketed so that it parses back as
            // the same tree, whatever the precedence would have said.
            match item {
                Expr::Leaf(_) => write!(f, "{item}")?,
                _ => write!(f, "({item})")?,
            }
        }
        Ok(())
    }
}

impl Display for Selector {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('$')?;
        for segment in &self.segments {
            match segment {
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether this is `<`, `<=`, `>` or `>=` (numbers only).
    pub fn is_relational(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }
}

impl Display for Op {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number { text, .. } => f.write_str(text),
            Value::String {
                text,
                quoted: false,
            } => f.write_str(text),
            Value::String { text, quoted: true } => write_quoted(f, text),
            Value::Regex(r) => write!(f, "%{r}%"),
        }
    }
}

impl Display for JsonCondition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.test {
            JsonTest::Compare(op, value) => write!(f, "{} {op} {value}", self.selector),
            JsonTest::IsNull => write!(f, "{} IS NULL", self.selector),
            JsonTest::NotExists => write!(f, "{} NOT EXISTS", self.selector),
            JsonTest::IsTrue => write!(f, "{} IS TRUE", self.selector),
            JsonTest::IsFalse => write!(f, "{} IS FALSE", self.selector),
        }
    }
}

impl Display for FieldComparison {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, self.op, self.value)
    }
}

impl Display for Slot {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Ellipsis => f.write_str("..."),
            Slot::Field {
                name,
                condition: None,
            } => f.write_str(name),
            // The condition names its own field; printing the slot name again
            // would be redundant.
            Slot::Field {
                condition: Some(expr),
                ..
            } => write!(f, "{expr}"),
        }
    }
}

/// Writes `text` in double quotes, escaping `"` and `\`.
fn write_quoted(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}
