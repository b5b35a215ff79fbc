//! Field rules used by the `validator` derives on [`super::Order`]. Each returns a
//! `ValidationError` whose code is the rule name and whose message says what was expected.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use validator::{ValidateEmail, ValidationError};

/// Longest string accepted in any field (§3).
pub const MAX_TEXT_CHARS: usize = 255;

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(
        clippy::unwrap_used,
        reason = "a constant pattern, checked by the unit tests"
    )]
    Regex::new(r"^\+?[0-9]{7,15}$").unwrap()
});
static CURRENCY: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(
        clippy::unwrap_used,
        reason = "a constant pattern, checked by the unit tests"
    )]
    Regex::new(r"^[A-Z]{3}$").unwrap()
});

fn fail(code: &'static str, message: &'static str) -> Result<(), ValidationError> {
    Err(ValidationError::new(code).with_message(Cow::Borrowed(message)))
}

/// Is `id` a well-formed order id (`^[A-Za-z0-9_-]{1,64}$`)? Shared by validation and the
/// HTTP API, where it runs on every request: a byte loop, not a regex.
pub fn is_valid_order_uid(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Any string field: at most 255 characters, and no NUL (PostgreSQL text cannot hold it).
pub fn text(value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return fail("too_long", "must be at most 255 characters");
    }
    if value.contains('\0') {
        return fail("nul_byte", "must not contain NUL characters");
    }
    Ok(())
}

/// A string field that must carry something other than whitespace.
pub fn non_empty_text(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return fail("empty", "must not be empty");
    }
    text(value)
}

pub fn order_uid(value: &str) -> Result<(), ValidationError> {
    if is_valid_order_uid(value) {
        Ok(())
    } else {
        fail("order_uid", "must match ^[A-Za-z0-9_-]{1,64}$")
    }
}

pub fn phone(value: &str) -> Result<(), ValidationError> {
    if PHONE.is_match(value) {
        Ok(())
    } else {
        fail("phone", r"must match ^\+?[0-9]{7,15}$")
    }
}

pub fn currency(value: &str) -> Result<(), ValidationError> {
    if CURRENCY.is_match(value) {
        Ok(())
    } else {
        fail("currency", "must be three upper-case letters (ISO 4217)")
    }
}

pub fn email(value: &str) -> Result<(), ValidationError> {
    text(value)?;
    if value.validate_email() {
        Ok(())
    } else {
        fail("email", "must be a valid e-mail address")
    }
}

pub fn rfc3339(value: &str) -> Result<(), ValidationError> {
    if chrono::DateTime::parse_from_rfc3339(value).is_ok() {
        Ok(())
    } else {
        fail("rfc3339", "must be an RFC 3339 timestamp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_uid_rule_accepts_the_documented_alphabet_only() {
        assert!(is_valid_order_uid("b563feb7b2b84b6test"));
        assert!(is_valid_order_uid("A-Z_09"));
        assert!(is_valid_order_uid(&"a".repeat(64)));
        assert!(!is_valid_order_uid(&"a".repeat(65)));
        assert!(!is_valid_order_uid(""));
        assert!(!is_valid_order_uid("bad id"));
        assert!(!is_valid_order_uid("../etc"));
        assert!(!is_valid_order_uid("ünicode"));
    }

    #[test]
    fn phone_rule_allows_an_optional_plus_and_7_to_15_digits() {
        assert!(phone("+9720000000").is_ok());
        assert!(phone("1234567").is_ok());
        assert!(phone("123456").is_err());
        assert!(phone("+1234567890123456").is_err());
        assert!(phone("+972-000-0000").is_err());
    }

    #[test]
    fn text_rule_counts_characters_not_bytes() {
        assert!(text(&"é".repeat(255)).is_ok());
        assert!(text(&"é".repeat(256)).is_err());
        assert!(text("a\0b").is_err());
    }

    #[test]
    fn non_empty_rejects_whitespace_only() {
        assert!(non_empty_text("  ").is_err());
        assert!(non_empty_text("x").is_ok());
    }

    #[test]
    fn timestamps_must_be_rfc3339() {
        assert!(rfc3339("2021-11-26T06:22:19Z").is_ok());
        assert!(rfc3339("2021-11-26T06:22:19.123+03:00").is_ok());
        assert!(rfc3339("2021-11-26 06:22:19").is_err());
        assert!(rfc3339("yesterday").is_err());
    }
}
