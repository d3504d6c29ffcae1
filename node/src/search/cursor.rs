//! The page cursor: an opaque keyset token. It holds the sort key of the last hit of a page, so
//! the next page starts strictly after it (in the order of [`Key`], a total order), however
//! deep, and however many records arrived in between: a page never repeats nor skips a record
//! that existed when the first page was read. A word search's cursor also carries the
//! statistics its scores were computed with (document counts of the query's terms), and the
//! next page scores with them, so that a record keeps its score when new ones arrive.
//!
//! Format (base64url, no padding, of): version `1`; the order (`0` newest first, `1` by
//! score); a 16-byte fingerprint of the query (its words and filters); `created_at` (u64 LE);
//! the record id (32 bytes); for a score order, the score (f32 bits, LE), then the statistics
//! as LEB128 varints: the document count, the count of text fields and each one's token
//! count, the count of terms and each one's document frequency; finally a 16-byte BLAKE3
//! keyed hash of all of it, under a key the index draws at random when it opens. Only this
//! node's own tokens, for the same query, are accepted, and only until it restarts; anything
//! else is a [`CursorError`] naming `cursor`. Decoding is bounded: a token longer than
//! [`MAX_CURSOR_CHARS`] is refused before it is decoded.

use std::cmp::Ordering;

/// The longest token accepted: a 16-word search's token is about 500 characters.
pub const MAX_CURSOR_CHARS: usize = 2048;

const VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
/// The most statistics a token may carry: 16 terms in 6 fields.
const MAX_STATS: usize = 96;

/// Why a cursor was refused. The message starts with `cursor:`, the parameter's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    #[error("cursor: not a cursor this node gave out (pass `next_cursor` back unchanged)")]
    Malformed,
    #[error(
        "cursor: not a cursor this node gave out, or given out before it restarted; start again from the first page"
    )]
    Foreign,
    #[error(
        "cursor: this cursor belongs to another search (other words or filters); start again from the first page"
    )]
    OtherQuery,
}

/// How a search orders its hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// A filter-only listing: `created_at` descending, then the id.
    Newest,
    /// A word search: score descending, then `created_at` descending, then the id.
    Score,
}

/// A hit's place in the order: greater scores first, then newer, then the smaller id. Two
/// distinct records never compare equal (their ids differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Key {
    pub score: f32,
    pub created_at: u64,
    pub id: [u8; 32],
}

impl Key {
    /// `Less` when `self` comes first.
    pub fn rank(&self, other: &Key) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(other.created_at.cmp(&self.created_at))
            .then(self.id.cmp(&other.id))
    }
}

/// The BM25 statistics a word search scored with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stats {
    pub num_docs: u64,
    /// Per text field, in the schema's order.
    pub tokens: Vec<u64>,
    /// Per scored term, in the order of `TextQuery::scored_terms`.
    pub doc_freqs: Vec<u64>,
}

/// A decoded cursor.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Cursor {
    pub order: Order,
    pub query: [u8; 16],
    pub key: Key,
    /// Present exactly when the order is by score.
    pub stats: Option<Stats>,
}

impl Cursor {
    pub fn encode(&self, secret: &[u8; 32]) -> String {
        let mut out = vec![VERSION, self.order_byte()];
        out.extend_from_slice(&self.query);
        out.extend_from_slice(&self.key.created_at.to_le_bytes());
        out.extend_from_slice(&self.key.id);
        if let Some(stats) = &self.stats {
            out.extend_from_slice(&self.key.score.to_bits().to_le_bytes());
            varint(&mut out, stats.num_docs);
            varint(&mut out, stats.tokens.len() as u64);
            for &n in &stats.tokens {
                varint(&mut out, n);
            }
            varint(&mut out, stats.doc_freqs.len() as u64);
            for &n in &stats.doc_freqs {
                varint(&mut out, n);
            }
        }
        let mac = blake3::keyed_hash(secret, &out);
        out.extend_from_slice(&mac.as_bytes()[..MAC_BYTES]);
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    fn order_byte(&self) -> u8 {
        match self.order {
            Order::Newest => 0,
            Order::Score => 1,
        }
    }

    /// Checks a token's shape only (no key at hand): what the parameters' reader refuses.
    pub fn check_shape(text: &str) -> Result<(), CursorError> {
        bytes_of(text).map(|_| ())
    }

    /// Reads a token this index gave out. Refuses any other, and a token of another query.
    pub fn decode(text: &str, secret: &[u8; 32], query: &[u8; 16]) -> Result<Cursor, CursorError> {
        let bytes = bytes_of(text)?;
        let (payload, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
        let expected = blake3::keyed_hash(secret, payload);
        let differs = expected.as_bytes()[..MAC_BYTES]
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return Err(CursorError::Foreign);
        }
        let cursor = parse(payload).ok_or(CursorError::Malformed)?;
        if &cursor.query != query {
            return Err(CursorError::OtherQuery);
        }
        Ok(cursor)
    }
}

/// A token's bytes, with room for a MAC at least; bounded before anything is decoded.
fn bytes_of(text: &str) -> Result<Vec<u8>, CursorError> {
    use base64::Engine;
    if text.len() > MAX_CURSOR_CHARS {
        return Err(CursorError::Malformed);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CursorError::Malformed)?;
    if bytes.len() < 2 + 16 + 8 + 32 + MAC_BYTES || bytes[0] != VERSION {
        return Err(CursorError::Malformed);
    }
    Ok(bytes)
}

fn parse(payload: &[u8]) -> Option<Cursor> {
    let mut r = Reader(payload);
    if r.byte()? != VERSION {
        return None;
    }
    let order = match r.byte()? {
        0 => Order::Newest,
        1 => Order::Score,
        _ => return None,
    };
    let query: [u8; 16] = r.array()?;
    let created_at = u64::from_le_bytes(r.array()?);
    let id: [u8; 32] = r.array()?;
    let (score, stats) = match order {
        Order::Newest => (0.0, None),
        Order::Score => {
            let score = f32::from_bits(u32::from_le_bytes(r.array()?));
            let num_docs = r.varint()?;
            let tokens = r.list()?;
            let doc_freqs = r.list()?;
            if num_docs == 0 || doc_freqs.iter().any(|&n| n > num_docs) || score.is_nan() {
                return None;
            }
            (
                score,
                Some(Stats {
                    num_docs,
                    tokens,
                    doc_freqs,
                }),
            )
        }
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(Cursor {
        order,
        query,
        key: Key {
            score,
            created_at,
            id,
        },
        stats,
    })
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    /// A LEB128 varint of at most 10 bytes, in its shortest form.
    fn varint(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return None;
            }
            n |= bits << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return None;
                }
                return Some(n);
            }
        }
        None
    }

    fn list(&mut self) -> Option<Vec<u64>> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > MAX_STATS {
            return None;
        }
        (0..len).map(|_| self.varint()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [7; 32];
    const QUERY: [u8; 16] = [3; 16];

    fn sample(order: Order) -> Cursor {
        Cursor {
            order,
            query: QUERY,
            key: Key {
                score: if order == Order::Score { 4.25 } else { 0.0 },
                created_at: 1_764_000_000_000,
                id: [9; 32],
            },
            stats: (order == Order::Score).then(|| Stats {
                num_docs: 1234,
                tokens: vec![0, 1, 300, 20_000, u64::MAX, 5],
                doc_freqs: vec![1, 1234, 0],
            }),
        }
    }

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        for order in [Order::Newest, Order::Score] {
            let cursor = sample(order);
            let token = cursor.encode(&SECRET);
            assert!(token.len() < 200, "{token}");
            assert_eq!(Cursor::decode(&token, &SECRET, &QUERY), Ok(cursor));
            assert_eq!(
                Cursor::decode(&token, &[8; 32], &QUERY),
                Err(CursorError::Foreign)
            );
            assert_eq!(
                Cursor::decode(&token, &SECRET, &[4; 16]),
                Err(CursorError::OtherQuery)
            );
        }
        for garbage in [
            "",
            "abc",
            "1000000000",
            "%%",
            &"A".repeat(MAX_CURSOR_CHARS + 1),
        ] {
            assert!(
                Cursor::decode(garbage, &SECRET, &QUERY).is_err(),
                "{garbage}"
            );
        }
    }

    proptest! {
        /// Any text, and any token with one byte changed: refused, never a panic.
        #[test]
        fn no_token_but_ours_is_accepted(text in ".{0,300}", at in 0usize..200, flip in 1u8..) {
            prop_assert!(Cursor::decode(&text, &SECRET, &QUERY).is_err());
            use base64::Engine;
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let token = sample(Order::Score).encode(&SECRET);
            let mut bytes = engine.decode(&token).unwrap_or_default();
            let at = at % bytes.len();
            bytes[at] ^= flip;
            prop_assert!(Cursor::decode(&engine.encode(&bytes), &SECRET, &QUERY).is_err());
        }
    }
}
