//! The filter-pattern parser: one pass over the text, byte offsets inside,
//! character positions in errors.

use crate::ast::{
    Expr, FieldComparison, JsonCondition, JsonTest, Op, Pattern, Segment, Selector, Slot, Term,
    TermMode, TermText, Value,
};
use crate::error::{
    MAX_NESTING, MAX_PATTERN_CHARS, MAX_REGEX_PER_PATTERN, PatternError, PatternErrorKind,
};

/// Parses a whole filter pattern.
pub(crate) fn parse(src: &str) -> Result<Pattern, PatternError> {
    let chars = src.chars().count();
    if chars > MAX_PATTERN_CHARS {
        return Err(PatternError {
            position: MAX_PATTERN_CHARS,
            kind: PatternErrorKind::TooLong { chars },
        });
    }
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
        regexes: 0,
    };
    p.skip_ws();
    let pattern = match p.peek() {
        None => Pattern::All,
        Some('{') => p.json()?,
        Some('[') => p.delimited()?,
        Some(_) => p.terms()?,
    };
    if matches!(pattern, Pattern::Json(_) | Pattern::Delimited(_))
        && p.regexes > MAX_REGEX_PER_PATTERN
    {
        return Err(PatternError {
            position: 0,
            kind: PatternErrorKind::TooManyRegex,
        });
    }
    Ok(pattern)
}

/// Characters of an unquoted value: enough for words, numbers, IP
/// addresses, paths, times and `*` wildcards. AWS asks for anything else
/// (`@`, `$`, `\`, spaces...) to be quoted.
fn is_unquoted_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | ':' | '/' | '+')
}

/// Characters of a JSON property name in a selector (AWS: alphanumeric, `-`, `_`).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
}

/// Characters of a space-delimited field name.
fn is_field_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Characters of a bare term (AWS: anything else must be quoted).
fn is_term_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether a character may appear in a `%regex%`: AWS's documented set of
/// letters, digits, symbols (`: _ # = @ / ; , -`) and operators
/// (`^ $ ? [ ] { } | \ * + .`). Parentheses, spaces and multi-byte
/// characters are refused, as AWS refuses them.
fn is_regex_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ':' | '_'
                | '#'
                | '='
                | '@'
                | '/'
                | ';'
                | ','
                | '-'
                | '^'
                | '$'
                | '?'
                | '['
                | ']'
                | '{'
                | '}'
                | '|'
                | '\\'
                | '*'
                | '+'
                | '.'
        )
}

/// Parses an unquoted literal as a number when it is one: an integer or a
/// decimal with an optional sign, optionally in scientific notation.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Checks a regex body against AWS's rules and that it compiles.
pub(crate) fn check_regex(body: &str) -> Result<(), String> {
    if body.is_empty() {
        return Err("the regular expression is empty".to_owned());
    }
    if let Some(c) = body.chars().find(|c| !is_regex_char(*c)) {
        return Err(format!(
            "character '{c}' is not supported in a regular expression"
        ));
    }
    build_regex(body).map(|_| ())
}

/// Compiles a regex body with bounded size, so that `a{1000}{1000}` is
/// refused rather than eating memory.
pub(crate) fn build_regex(body: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(body)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(MAX_NESTING as u32)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            format!("not a valid regular expression ({})", last.trim())
        })
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// Open parentheses.
    depth: usize,
    /// Regexes seen so far.
    regexes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Eats a keyword (any case) that is not followed by a word character.
    fn eat_keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.len() >= word.len()
            && rest.is_char_boundary(word.len())
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && !rest[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &'static str) -> PatternError {
        let found = match self.peek() {
            None => "end of pattern".to_owned(),
            Some(c) => format!("'{c}'"),
        };
        PatternError::at(self.src, self.pos, |position| {
            PatternErrorKind::Unexpected {
                position,
                expected,
                found,
            }
        })
    }

    fn expect(&mut self, token: &str, expected: &'static str) -> Result<(), PatternError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_end(&mut self) -> Result<(), PatternError> {
        self.skip_ws();
        if self.pos == self.src.len() {
            Ok(())
        } else {
            Err(self.unexpected("end of pattern"))
        }
    }

    // ---- terms ----

    fn terms(&mut self) -> Result<Pattern, PatternError> {
        let mut terms = Vec::new();
        loop {
            self.skip_ws();
            let start = self.pos;
            let Some(c) = self.peek() else { break };
            let mode = match c {
                '-' => {
                    self.pos += 1;
                    TermMode::Excluded
                }
                '?' => {
                    self.pos += 1;
                    TermMode::Optional
                }
                _ => TermMode::Required,
            };
            if mode != TermMode::Required {
                // AWS's own guide writes `"ERROR" - "Exiting"`: a space
                // between the sign and its term is accepted.
                self.skip_ws();
            }
            let text = match self.peek() {
                Some('"') => TermText::Phrase(self.quoted()?),
                Some('%') => TermText::Regex(self.regex()?),
                _ => {
                    let word_start = self.pos;
                    while let Some(c) = self.peek() {
                        if c.is_whitespace() {
                            break;
                        }
                        self.pos += c.len_utf8();
                    }
                    let word = &self.src[word_start..self.pos];
                    if word.is_empty() || !word.chars().all(is_term_char) {
                        return Err(PatternError::at(self.src, start, |_| {
                            PatternErrorKind::InvalidTerm {
                                term: self.src[start..self.pos].trim_end().to_owned(),
                            }
                        }));
                    }
                    TermText::Word(word.to_owned())
                }
            };
            // A quoted phrase or regex must stand alone, as a word does.
            if self.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(self.unexpected("a space between terms"));
            }
            terms.push(Term { mode, text });
        }
        // `""` alone is AWS's spelling of "match everything".
        if let [
            Term {
                mode: TermMode::Required,
                text: TermText::Phrase(p),
            },
        ] = terms.as_slice()
            && p.is_empty()
        {
            return Ok(Pattern::All);
        }
        Ok(Pattern::Terms(terms))
    }

    /// A double-quoted string starting at the current `"`; `\"` and `\\`
    /// are escapes, any other backslash is kept as written.
    fn quoted(&mut self) -> Result<String, PatternError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(PatternError::at(self.src, open, |position| {
                        PatternErrorKind::Unterminated {
                            position,
                            what: "quoted string",
                        }
                    }));
                }
                Some('"') => return Ok(out),
                Some('\\') => match self.peek() {
                    Some(c @ ('"' | '\\')) => {
                        self.pos += 1;
                        out.push(c);
                    }
                    _ => out.push('\\'),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// A `%regex%` starting at the current `%`.
    fn regex(&mut self) -> Result<String, PatternError> {
        let open = self.pos;
        self.pos += 1;
        let Some(len) = self.rest().find('%') else {
            return Err(PatternError::at(self.src, open, |position| {
                PatternErrorKind::Unterminated {
                    position,
                    what: "regular expression",
                }
            }));
        };
        let body = &self.src[self.pos..self.pos + len];
        if let Err(reason) = check_regex(body) {
            return Err(PatternError::at(self.src, open, |position| {
                PatternErrorKind::InvalidRegex { position, reason }
            }));
        }
        self.pos += len + 1;
        self.regexes += 1;
        Ok(body.to_owned())
    }

    // ---- shared boolean expressions ----

    fn or_expr<L>(
        &mut self,
        leaf: &mut dyn FnMut(&mut Self) -> Result<L, PatternError>,
    ) -> Result<Expr<L>, PatternError> {
        let mut items = vec![self.and_expr(leaf)?];
        loop {
            self.skip_ws();
            if !self.eat("||") {
                break;
            }
            items.push(self.and_expr(leaf)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr<L>(
        &mut self,
        leaf: &mut dyn FnMut(&mut Self) -> Result<L, PatternError>,
    ) -> Result<Expr<L>, PatternError> {
        let mut items = vec![self.primary(leaf)?];
        loop {
            self.skip_ws();
            if !self.eat("&&") {
                break;
            }
            items.push(self.primary(leaf)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn primary<L>(
        &mut self,
        leaf: &mut dyn FnMut(&mut Self) -> Result<L, PatternError>,
    ) -> Result<Expr<L>, PatternError> {
        self.skip_ws();
        if self.peek() == Some('(') {
            let open = self.pos;
            if self.depth >= MAX_NESTING {
                return Err(PatternError::at(self.src, open, |position| {
                    PatternErrorKind::TooDeep { position }
                }));
            }
            self.pos += 1;
            self.depth += 1;
            let inner = self.or_expr(leaf)?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(if self.pos == self.src.len() {
                    PatternError::at(self.src, open, |position| PatternErrorKind::Unterminated {
                        position,
                        what: "parenthesis",
                    })
                } else {
                    self.unexpected("'&&', '||' or ')'")
                });
            }
            self.depth -= 1;
            return Ok(inner);
        }
        Ok(Expr::Leaf(leaf(self)?))
    }

    fn operator(&mut self) -> Option<Op> {
        for (token, op) in [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat(token) {
                return Some(op);
            }
        }
        None
    }

    /// The value after an operator: quoted, `%regex%`, or unquoted (a
    /// number when it reads as one).
    fn value(&mut self, op: Op) -> Result<Value, PatternError> {
        self.skip_ws();
        let start = self.pos;
        let value = match self.peek() {
            Some('"') => Value::String {
                text: self.quoted()?,
                quoted: true,
            },
            Some('%') => Value::Regex(self.regex()?),
            _ => {
                while self.peek().is_some_and(is_unquoted_value_char) {
                    self.pos += 1;
                }
                let text = &self.src[start..self.pos];
                if text.is_empty() {
                    return Err(self.unexpected("a value"));
                }
                match parse_number(text) {
                    Some(value) => Value::Number {
                        text: text.to_owned(),
                        value,
                    },
                    None => Value::String {
                        text: text.to_owned(),
                        quoted: false,
                    },
                }
            }
        };
        if op.is_relational() && !matches!(value, Value::Number { .. }) {
            let written = self.src[start..self.pos].to_owned();
            return Err(PatternError::at(self.src, start, |position| {
                PatternErrorKind::NotANumber {
                    position,
                    op: op.as_str(),
                    value: written,
                }
            }));
        }
        Ok(value)
    }

    // ---- JSON ----

    fn json(&mut self) -> Result<Pattern, PatternError> {
        self.expect("{", "'{'")?;
        let expr = self.or_expr(&mut |p: &mut Self| p.json_condition())?;
        self.skip_ws();
        if self.pos == self.src.len() {
            return Err(PatternError::at(self.src, 0, |position| {
                PatternErrorKind::Unterminated {
                    position,
                    what: "JSON pattern (missing '}')",
                }
            }));
        }
        self.expect("}", "'&&', '||' or '}'")?;
        self.expect_end()?;
        Ok(Pattern::Json(expr))
    }

    fn selector(&mut self) -> Result<Selector, PatternError> {
        self.skip_ws();
        self.expect("$", "a selector starting with '$.'")?;
        let mut segments = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let start = self.pos;
                    while self.peek().is_some_and(is_key_char) {
                        self.pos += 1;
                    }
                    if start == self.pos {
                        return Err(self.unexpected("a property name"));
                    }
                    segments.push(Segment::Key(self.src[start..self.pos].to_owned()));
                }
                Some('[') if !segments.is_empty() => {
                    self.pos += 1;
                    let start = self.pos;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    let Ok(index) = self.src[start..self.pos].parse::<u32>() else {
                        self.pos = start;
                        return Err(self.unexpected("an array index"));
                    };
                    self.expect("]", "']'")?;
                    segments.push(Segment::Index(index as usize));
                }
                _ => break,
            }
        }
        if segments.is_empty() {
            return Err(self.unexpected("'.' and a property name"));
        }
        Ok(Selector { segments })
    }

    fn json_condition(&mut self) -> Result<JsonCondition, PatternError> {
        let selector = self.selector()?;
        self.skip_ws();
        let test = if self.eat_keyword("IS") {
            self.skip_ws();
            if self.eat_keyword("NULL") {
                JsonTest::IsNull
            } else if self.eat_keyword("TRUE") {
                JsonTest::IsTrue
            } else if self.eat_keyword("FALSE") {
                JsonTest::IsFalse
            } else {
                return Err(self.unexpected("NULL, TRUE or FALSE"));
            }
        } else if self.eat_keyword("NOT") {
            self.skip_ws();
            if !self.eat_keyword("EXISTS") {
                return Err(self.unexpected("EXISTS"));
            }
            JsonTest::NotExists
        } else {
            let Some(op) = self.operator() else {
                return Err(self.unexpected("an operator, IS or NOT EXISTS"));
            };
            let value = self.value(op)?;
            JsonTest::Compare(op, value)
        };
        Ok(JsonCondition { selector, test })
    }

    // ---- space-delimited ----

    fn delimited(&mut self) -> Result<Pattern, PatternError> {
        self.expect("[", "'['")?;
        let mut slots = Vec::new();
        loop {
            self.skip_ws();
            slots.push(self.slot()?);
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                break;
            }
            if self.pos == self.src.len() {
                return Err(PatternError::at(self.src, 0, |position| {
                    PatternErrorKind::Unterminated {
                        position,
                        what: "space-delimited pattern (missing ']')",
                    }
                }));
            }
            return Err(self.unexpected("',' or ']'"));
        }
        self.expect_end()?;
        Ok(Pattern::Delimited(slots))
    }

    fn slot(&mut self) -> Result<Slot, PatternError> {
        if self.eat("...") {
            return Ok(Slot::Ellipsis);
        }
        match self.peek() {
            Some(',' | ']') | None => {
                return Ok(Slot::Field {
                    name: String::new(),
                    condition: None,
                });
            }
            Some('(') => {}
            _ => {
                let start = self.pos;
                let name = self.field_name()?;
                self.skip_ws();
                if !matches!(self.peek(), Some('=' | '!' | '<' | '>')) {
                    return Ok(Slot::Field {
                        name,
                        condition: None,
                    });
                }
                // A condition: parse it whole, names included.
                self.pos = start;
            }
        }
        let expr = self.or_expr(&mut |p: &mut Self| p.field_comparison())?;
        let name = leftmost(&expr).name.clone();
        Ok(Slot::Field {
            name,
            condition: Some(expr),
        })
    }

    fn field_name(&mut self) -> Result<String, PatternError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(is_field_name_char) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.unexpected("a field name, '...' or ','"));
        }
        Ok(self.src[start..self.pos].to_owned())
    }

    fn field_comparison(&mut self) -> Result<FieldComparison, PatternError> {
        let name = self.field_name()?;
        self.skip_ws();
        let Some(op) = self.operator() else {
            return Err(self.unexpected("an operator"));
        };
        let value = self.value(op)?;
        Ok(FieldComparison { name, op, value })
    }
}

/// The first comparison of a field condition, which names the field.
fn leftmost(expr: &Expr<FieldComparison>) -> &FieldComparison {
    let mut e = expr;
    loop {
        match e {
            Expr::Leaf(c) => return c,
            Expr::Or(items) | Expr::And(items) => match items.first() {
                Some(first) => e = first,
                // The parser never builds an empty group.
                None => unreachable!("empty boolean group"),
            },
        }
    }
}
