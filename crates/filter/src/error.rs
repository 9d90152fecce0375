//! Why a filter pattern was refused.
//!
//! The `Display` text is what CloudWatch Logs' API returns with
//! `InvalidParameterException`; where AWS's own wording is known (an invalid
//! term) it is used verbatim, elsewhere the message names the character
//! position and what was expected there.

/// The longest filter pattern AWS accepts (`filterPattern`, 1024 characters).
pub const MAX_PATTERN_CHARS: usize = 1024;

/// How deep parentheses may nest; AWS documents no number, this bound keeps
/// the recursive parser and matcher off the end of the stack.
pub const MAX_NESTING: usize = 32;

/// How many `%regex%` a JSON or space-delimited pattern may hold (AWS's quota).
pub const MAX_REGEX_PER_PATTERN: usize = 2;

/// A refused filter pattern: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct PatternError {
    /// The 0-based character (not byte) position in the pattern where the
    /// problem was found.
    pub position: usize,
    /// What is wrong.
    pub kind: PatternErrorKind,
}

/// What is wrong with a refused pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternErrorKind {
    /// The pattern is longer than [`MAX_PATTERN_CHARS`].
    #[error("Invalid filter pattern: length {chars} exceeds the maximum of 1024 characters")]
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// A bare term holds characters other than letters, digits and `_`;
    /// AWS asks for such terms to be double-quoted.
    #[error("Invalid character(s) in term '{term}'")]
    InvalidTerm {
        /// The offending term as written.
        term: String,
    },
    /// Something other than what the grammar allows at this point.
    #[error("Invalid filter pattern at position {position}: expected {expected}, found {found}")]
    Unexpected {
        /// The character position (repeated for the message).
        position: usize,
        /// What the grammar allows here.
        expected: &'static str,
        /// What was there, quoted, or "end of pattern".
        found: String,
    },
    /// A quoted string, regex or group that is never closed.
    #[error("Invalid filter pattern at position {position}: unterminated {what}")]
    Unterminated {
        /// The character position of its opening.
        position: usize,
        /// What was left open.
        what: &'static str,
    },
    /// `<`, `>`, `<=` or `>=` with a value that is not a number.
    #[error(
        "Invalid filter pattern at position {position}: operator {op} needs a numeric value, found '{value}'"
    )]
    NotANumber {
        /// The character position of the value.
        position: usize,
        /// The operator.
        op: &'static str,
        /// The value as written.
        value: String,
    },
    /// A regex holds a character or construct AWS does not support.
    #[error("Invalid regex in filter pattern at position {position}: {reason}")]
    InvalidRegex {
        /// The character position of the regex.
        position: usize,
        /// Why.
        reason: String,
    },
    /// More than [`MAX_REGEX_PER_PATTERN`] regexes in a JSON or space-delimited pattern.
    #[error(
        "Invalid filter pattern: a JSON or space-delimited pattern may contain at most 2 regular expressions"
    )]
    TooManyRegex,
    /// Parentheses nested deeper than [`MAX_NESTING`].
    #[error("Invalid filter pattern at position {position}: parentheses nested deeper than 32")]
    TooDeep {
        /// The character position of the parenthesis that went too deep.
        position: usize,
    },
    /// A metric value or dimension that is neither a number nor a field the
    /// pattern names.
    #[error("Invalid metric value '{value}': {reason}")]
    InvalidMetricValue {
        /// The value as given.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

impl PatternError {
    /// An error at a byte offset of `pattern`, converted to a character position.
    pub(crate) fn at(
        pattern: &str,
        byte_offset: usize,
        kind: impl FnOnce(usize) -> PatternErrorKind,
    ) -> Self {
        let position = char_position(pattern, byte_offset);
        Self {
            position,
            kind: kind(position),
        }
    }
}

/// The character index of a byte offset (clamped to the pattern).
pub(crate) fn char_position(pattern: &str, byte_offset: usize) -> usize {
    let mut end = byte_offset.min(pattern.len());
    while !pattern.is_char_boundary(end) {
        end -= 1;
    }
    pattern[..end].chars().count()
}
