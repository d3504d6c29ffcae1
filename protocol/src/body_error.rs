//! Why a record's body does not decode, in words: which field, what it holds, and what the
//! format expects there ("`created_at` is text; expected an integer (milliseconds since 1970)").
//!
//! ciborium's errors print as Rust debug text (`Semantic(None, "invalid type: string, expected
//! integer")`) and name no field. So when a body fails to decode, it is decoded a second time
//! with `serde_path_to_error` tracking where the failure happened, and serde's message is put
//! into the format's words. Only failures pay for this; a good body is decoded once.

use crate::record::Body;
use serde::{Deserialize, Deserializer};

type CborError = ciborium::de::Error<std::io::Error>;

/// The message for `error`, which decoding `body` as a `Body` returned.
pub(crate) fn explain(body: &[u8], error: &CborError) -> String {
    let path = failure_path(body);
    match error {
        CborError::Semantic(_, message) => semantic(&path, message),
        CborError::Syntax(offset) => {
            format!("{}: not valid CBOR at byte {offset} of the body", at(&path))
        }
        CborError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the body ends in the middle of {}", at(&path))
        }
        CborError::Io(e) => format!("{}: cannot be read: {e}", at(&path)),
        CborError::RecursionLimitExceeded => {
            format!("{}: values are nested too deeply", at(&path))
        }
    }
}

/// Where decoding `body` failed: the path of the field (`publication.tags[2]`), empty for the
/// body itself.
fn failure_path(body: &[u8]) -> String {
    /// Decodes a `Body` with its path tracked, and keeps the path of the failure rather than
    /// the failure (the error itself is the one the first decoding returned).
    struct PathOfFailure(String);
    impl<'de> Deserialize<'de> for PathOfFailure {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut track = serde_path_to_error::Track::new();
            let failed =
                Body::deserialize(serde_path_to_error::Deserializer::new(d, &mut track)).is_err();
            let path = if failed {
                track.path().to_string()
            } else {
                String::new()
            };
            Ok(PathOfFailure(if path == "." {
                String::new()
            } else {
                path
            }))
        }
    }
    ciborium::from_reader::<PathOfFailure, _>(body)
        .map(|p| p.0)
        .unwrap_or_default()
}

/// `path.name`, or `name` at the top.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// "`path`", or "the body" at the top.
fn at(path: &str) -> String {
    if path.is_empty() {
        "the body".to_owned()
    } else {
        format!("`{path}`")
    }
}

/// serde's messages (`invalid type: X, expected Y`, `missing field `f``, …) in the format's
/// words.
fn semantic(path: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "{} is {}; expected {}",
            at(path),
            found_as(found),
            expected_at(path, expected)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((length, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "{} has a length of {length}; expected {}",
            at(path),
            expected_at(path, expected)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "{} is {}; expected {}",
            at(path),
            found_as(found),
            expected_at(path, expected)
        );
    }
    if let Some(name) = between(message, "missing field `", "`") {
        let field = join(path, name);
        return match known(&field) {
            Some(expected) => format!("`{field}` is missing; expected {expected}"),
            None => format!("`{field}` is missing"),
        };
    }
    if let Some(name) = between(message, "unknown field `", "`") {
        // The path may already end at the unknown key.
        let field = if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            join(path, name)
        };
        let fields = message
            .split_once(", expected ")
            .map(|(_, e)| format!("; the fields are {}", e.trim_start_matches("one of ")))
            .unwrap_or_default();
        return format!("`{field}` is not a field here{fields}");
    }
    if let Some(value) = between(message, "unknown variant `", "`") {
        let expected = message
            .split_once(", expected ")
            .map(|(_, e)| e.trim_start_matches("one of "))
            .unwrap_or("a known value");
        return format!("{} is `{value}`; expected one of {expected}", at(path));
    }
    if let Some(name) = between(message, "duplicate field `", "`") {
        return format!("`{}` is given twice", join(path, name));
    }
    format!("{}: {message}", at(path))
}

/// The text between `start` (a prefix of `s`) and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    s.strip_prefix(start)?.split(end).next()
}

/// What a value holds, from serde's `Unexpected` (`integer `5``, `string`, `map`…).
fn found_as(found: &str) -> String {
    let (kind, value) = match found.split_once(' ') {
        Some((kind, value)) if value.starts_with('`') || value.starts_with('"') => (kind, value),
        _ => (found, ""),
    };
    let words = match kind {
        "string" | "str" => "text",
        "integer" => "an integer",
        "floating" => "a decimal number",
        "boolean" => "true/false",
        "bytes" | "byte" => "a byte string",
        "sequence" => "a list",
        "map" => "a map",
        "null" | "unit" => "null",
        "tag" => "a tagged value",
        other => other,
    };
    let value = value.trim_start_matches("point ");
    if value.is_empty() {
        words.to_owned()
    } else {
        format!("{words} ({value})")
    }
}

/// What the format expects at `path`, where it says more than serde's expectation.
fn known(path: &str) -> Option<&'static str> {
    match path {
        "v" => Some("an integer (the format version, 1)"),
        "author" => Some("a byte string of 32 bytes (an ed25519 public key)"),
        "created_at" => Some("an integer (milliseconds since 1970)"),
        "publication" => Some("a map of the publication's fields"),
        "act" => Some("a map (one act: founding, admission, delegation, revocation, retraction)"),
        "" => Some("a map of v, author, created_at, and publication or act"),
        _ => None,
    }
}

/// What the format expects at `path`, or serde's expectation in plain words.
fn expected_at(path: &str, serde_expected: &str) -> String {
    if let Some(known) = known(path) {
        return known.to_owned();
    }
    let words = match serde_expected {
        "string" | "str" | "a string" => "text",
        "integer" | "u8" | "u16" | "u32" | "u64" => "an integer of 0 or more",
        "i8" | "i16" | "i32" | "i64" => "an integer",
        "float" | "f64" | "f32" => "a number",
        "array" | "a sequence" => "a list",
        "map" => "a map",
        "bytes" | "byte buffer" | "a byte array" => "a byte string",
        "a boolean" => "true or false",
        other => match other.strip_prefix("struct ") {
            Some(name) => return format!("a map (a {name})"),
            None => other,
        },
    };
    words.to_owned()
}
