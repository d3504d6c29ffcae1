//! Record ids and author keys as people see them: lowercase hex, and the id prefixes that a
//! person may type instead of a whole id.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The shortest id prefix accepted where a person types an id.
pub const MIN_PREFIX_LEN: usize = 8;

/// A record id: the BLAKE3 hash of the record's signed bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub [u8; 32]);

impl RecordId {
    /// Parses a whole id: 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = decode_hex(s)?;
        Some(RecordId(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The first 12 hex characters, enough to name a record in a listing.
    pub fn short(&self) -> String {
        encode_hex(&self.0[..6])
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.short())
    }
}

impl Serialize for RecordId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bytes32::deserialize(d).map(|b| RecordId(b.0))
    }
}

/// An id, or a prefix of one, as a person typed it: validated, lower-cased hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPrefix(String);

impl IdPrefix {
    /// Accepts 8 to 64 hex characters, in either case.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{s}` is not a record id: ids are hexadecimal (0-9, a-f), {MIN_PREFIX_LEN} to 64 characters"
            ));
        }
        if t.len() < MIN_PREFIX_LEN || t.len() > 64 {
            return Err(format!(
                "`{s}` has {} characters: an id or id prefix has {MIN_PREFIX_LEN} to 64",
                t.len()
            ));
        }
        Ok(IdPrefix(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The whole bytes the prefix fixes (an odd final hex digit is left for `matches`).
    pub fn leading_bytes(&self) -> Vec<u8> {
        let even = &self.0[..self.0.len() / 2 * 2];
        decode_hex(even).unwrap_or_default()
    }

    pub fn matches(&self, id: &RecordId) -> bool {
        id.to_hex().starts_with(&self.0)
    }

    /// The whole id, when the prefix is one.
    pub fn as_full(&self) -> Option<RecordId> {
        RecordId::from_hex(&self.0)
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 32 bytes carried as a CBOR byte string.
pub(crate) struct Bytes32(pub [u8; 32]);

impl<'de> Deserialize<'de> for Bytes32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string of 32 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes32, E> {
                v.try_into()
                    .map(Bytes32)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V)
    }
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let id = RecordId([0xab; 32]);
        let p = IdPrefix::parse("ABABABABA").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.matches(&id));
        assert_eq!(p.leading_bytes(), vec![0xab; 4]);
        assert!(IdPrefix::parse("abab").is_err());
        assert!(IdPrefix::parse("zzzzzzzzzz").is_err());
        assert_eq!(RecordId::from_hex(&id.to_hex()), Some(id));
    }
}
