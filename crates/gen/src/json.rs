//! A minimal JSON object writer with fixed key order.
//!
//! The generator writes records field by field instead of going through
//! `serde_json::Value`: a `Value` map's key order depends on whether some other
//! crate in the build turned on serde_json's `preserve_order` feature, and the
//! generator's bytes must not depend on the build.

/// Writes one JSON object into a `String`, key by key.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_string(self.out, key);
        self.out.push(':');
    }

    /// `"key":"value"`.
    pub(crate) fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_string(self.out, value);
        self
    }

    /// `"key":n`.
    pub(crate) fn number(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.out.push_str(&value.to_string());
        self
    }

    /// `"key":true|false`.
    pub(crate) fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// `"key":null`.
    pub(crate) fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.out.push_str("null");
        self
    }

    /// `"key":<json>`, where `json` is already valid JSON text (written by another writer).
    pub(crate) fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    /// `"key":{...}`, the nested object written by `body`.
    pub(crate) fn object(
        &mut self,
        key: &str,
        body: impl FnOnce(&mut ObjectWriter<'_>),
    ) -> &mut Self {
        self.key(key);
        let mut inner = ObjectWriter::new(self.out);
        body(&mut inner);
        inner.finish();
        self
    }

    /// `"key":[{...},...]`, one object per call of `body` with each item.
    pub(crate) fn array_of_objects<T>(
        &mut self,
        key: &str,
        items: &[T],
        mut body: impl FnMut(&mut ObjectWriter<'_>, &T),
    ) -> &mut Self {
        self.key(key);
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let mut inner = ObjectWriter::new(self.out);
            body(&mut inner, item);
            inner.finish();
        }
        self.out.push(']');
        self
    }

    /// Closes the object.
    pub(crate) fn finish(self) {
        self.out.push('}');
    }
}

/// Appends `value` as a JSON string literal.
pub(crate) fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_object_writer_output_parses_and_keeps_order() {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out);
        w.string("z", "quote \" back \\ nl \n ctl \u{1}")
            .number("a", 42)
            .boolean("t", true)
            .null("n")
            .object("o", |o| {
                o.string("k", "v");
            })
            .object("empty", |_| {})
            .array_of_objects("arr", &[1u64, 2], |o, i| {
                o.number("i", *i);
            });
        w.finish();
        assert!(out.starts_with(r#"{"z":"#));
        assert!(out.ends_with(r#""arr":[{"i":1},{"i":2}]}"#));
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["z"], "quote \" back \\ nl \n ctl \u{1}");
        assert_eq!(parsed["o"]["k"], "v");
        assert!(parsed["n"].is_null());
        assert_eq!(parsed["empty"], serde_json::json!({}));
    }
}
