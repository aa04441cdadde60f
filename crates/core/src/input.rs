//! Types that parse what a request carries, so malformed input is refused where it comes
//! in and never reaches the database. PostgreSQL refuses a NUL byte in text with an error
//! while SQLite stores it: parsing first gives the same 4xx on both.

use serde::{Deserialize, Deserializer};

/// A record's id as the database holds it: a UUID, hyphenated and lowercase (clients,
/// users and API keys). Anything else names no record, so it is never looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a record id (a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8)")]
pub struct NotARecordId;

/// The hyphenated form's length; `Uuid::try_parse` also takes braced, URN and bare forms.
const HYPHENATED_LEN: usize = 36;

impl RecordId {
    pub fn parse(raw: &str) -> Result<Self, NotARecordId> {
        if raw.len() != HYPHENATED_LEN {
            return Err(NotARecordId);
        }
        let id = uuid::Uuid::try_parse(raw).map_err(|_| NotARecordId)?;
        Ok(Self(id.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One line of free text: trimmed, at most `MAX` characters, with no control character
/// (no NUL, no line break, no escape sequence). Problems read after the field's name:
/// "The name can be at most 80 characters."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleLine<const MAX: usize>(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("can be at most {0} characters")]
    TooLong(usize),
    #[error("cannot contain control characters such as line breaks")]
    ControlCharacter,
}

impl<const MAX: usize> SingleLine<MAX> {
    pub fn parse(raw: &str) -> Result<Self, TextProblem> {
        let text = raw.trim();
        if text.chars().any(char::is_control) {
            return Err(TextProblem::ControlCharacter);
        }
        if text.chars().count() > MAX {
            return Err(TextProblem::TooLong(MAX));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether `text` holds a character that must not be stored: NUL, or a control character
/// other than the line breaks and tabs multi-line text may have.
pub fn has_stray_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_hyphenated_uuids() {
        let id = RecordId::parse("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap();
        assert_eq!(id.as_str(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        for bad in [
            "",
            "a\0b",
            "67e55044-10b1-426f-9247-bb680e5fe0c\0",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "does-not-exist",
        ] {
            assert_eq!(RecordId::parse(bad), Err(NotARecordId), "{bad:?}");
        }
    }

    #[test]
    fn record_ids_deserialize_from_forms_and_paths() {
        let id: RecordId =
            serde_json::from_str("\"67e55044-10b1-426f-9247-bb680e5fe0c8\"").unwrap();
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert!(serde_json::from_str::<RecordId>("\"a\\u0000b\"").is_err());
    }

    #[test]
    fn single_lines_refuse_control_characters() {
        assert_eq!(SingleLine::<5>::parse("  abc ").unwrap().as_str(), "abc");
        assert_eq!(
            SingleLine::<5>::parse("a\0b"),
            Err(TextProblem::ControlCharacter)
        );
        assert_eq!(
            SingleLine::<5>::parse("a\u{1b}[0m"),
            Err(TextProblem::ControlCharacter)
        );
        assert_eq!(SingleLine::<2>::parse("abc"), Err(TextProblem::TooLong(2)));
        assert!(has_stray_control("a\0b"));
        assert!(!has_stray_control("two\nlines\tand tabs"));
    }
}
