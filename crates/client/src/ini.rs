//! A small reader for the INI dialect of AWS's shared `credentials` and `config` files.
//!
//! It follows what botocore accepts (Python's `configparser`), within what
//! these two files use:
//!
//! * `[section]` headers; whitespace inside the brackets is trimmed;
//! * `key = value` or `key: value`, split at the first `=` or `:`; keys are
//!   lowercased (as `configparser` does), keys and values trimmed;
//! * full-line comments starting with `#` or `;`; there are no inline
//!   comments (a `#` inside a value is part of the value, as in botocore);
//! * nested settings: a key with an empty value followed by indented
//!   `key = value` lines (`s3 =\n  max_concurrent_requests = 20`); the
//!   indented lines belong to the nested block and are not read as keys of
//!   the section;
//! * a repeated section or key: the last one wins.
//!
//! Lines that fit none of these are ignored rather than fatal, so a file the
//! AWS CLI tolerates never stops `cairn` from finding its own profile.

/// A parsed INI file: sections in file order, each with its key/value pairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    /// Parses INI text; never fails (see the module doc for what is skipped).
    pub(crate) fn parse(text: &str) -> Self {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        // Index into `sections` of the section being read, if any.
        let mut current: Option<usize> = None;
        // True after `key =` with an empty value: indented lines that follow are nested.
        let mut in_nested_block = false;
        for raw_line in text.lines() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let indented = raw_line.starts_with([' ', '\t']);
            if indented && in_nested_block {
                continue;
            }
            in_nested_block = false;
            if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = inner.trim().to_owned();
                current = Some(match sections.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        sections.push((name, Vec::new()));
                        sections.len() - 1
                    }
                });
                continue;
            }
            let Some(section) = current else { continue };
            let Some(split) = line.find(['=', ':']) else {
                continue;
            };
            let key = line[..split].trim().to_ascii_lowercase();
            let value = line[split + 1..].trim().to_owned();
            if key.is_empty() {
                continue;
            }
            in_nested_block = value.is_empty();
            let entries = &mut sections[section].1;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Self { sections }
    }

    /// Whether a section of this name exists.
    pub(crate) fn has_section(&self, section: &str) -> bool {
        self.sections.iter().any(|(n, _)| n == section)
    }

    /// The value of `key` in `section`; empty values count as absent.
    pub(crate) fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(n, _)| n == section)?
            .1
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ini_sections_keys_and_comments() {
        let ini = Ini::parse(
            "# leading comment\n\
             ; another\n\
             [default]\n\
             aws_access_key_id = AKIDEXAMPLE\n\
             aws_secret_access_key=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n\
             \n\
             [ profile dev ]\n\
             Region: eu-west-1\n\
             output = json # not a comment in botocore\n",
        );
        assert_eq!(ini.get("default", "aws_access_key_id"), Some("AKIDEXAMPLE"));
        assert_eq!(
            ini.get("default", "aws_secret_access_key"),
            Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        );
        assert_eq!(ini.get("profile dev", "region"), Some("eu-west-1"));
        assert_eq!(
            ini.get("profile dev", "output"),
            Some("json # not a comment in botocore")
        );
        assert!(ini.has_section("profile dev"));
        assert!(!ini.has_section("dev"));
        assert_eq!(ini.get("default", "region"), None);
    }

    #[test]
    fn test_ini_nested_block_is_not_read_as_section_keys() {
        let ini = Ini::parse(
            "[default]\n\
             s3 =\n    region = nested-only\n    max_concurrent_requests = 20\n\
             region = us-west-2\n",
        );
        assert_eq!(ini.get("default", "region"), Some("us-west-2"));
        assert_eq!(ini.get("default", "max_concurrent_requests"), None);
        assert_eq!(ini.get("default", "s3"), None);
    }

    #[test]
    fn test_ini_last_value_wins_and_sections_merge() {
        let ini = Ini::parse("[a]\nk = 1\n[b]\nk = 2\n[a]\nk = 3\nj = 4\n");
        assert_eq!(ini.get("a", "k"), Some("3"));
        assert_eq!(ini.get("a", "j"), Some("4"));
        assert_eq!(ini.get("b", "k"), Some("2"));
    }

    #[test]
    fn test_ini_tolerates_garbage_and_keys_before_any_section() {
        let ini = Ini::parse("orphan = 1\n[s]\nno delimiter here\n= no key\nk = v\r\n");
        assert_eq!(ini.get("s", "k"), Some("v"));
        assert_eq!(ini.get("s", ""), None);
        assert!(!ini.has_section(""));
    }

    #[test]
    fn test_ini_value_keeps_later_delimiters() {
        let ini = Ini::parse("[s]\nurl = http://127.0.0.1:7447\nsecret = a=b:c\n");
        assert_eq!(ini.get("s", "url"), Some("http://127.0.0.1:7447"));
        assert_eq!(ini.get("s", "secret"), Some("a=b:c"));
    }
}
