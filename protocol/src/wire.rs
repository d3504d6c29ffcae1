//! What nodes say to each other, as values: the gossip announcement, and the requests and
//! responses of catch-up (set reconciliation) and of fetching records by id. The node crate
//! moves these over libp2p; a test peer can build them from here alone.
//!
//! Records travel whole only in fetch responses. Gossip carries a 32-byte announcement (the
//! record's id); a node that does not hold the record fetches it from the peer that announced
//! it, checks it, stores it, and only then lets gossip forward the announcement. Every node thus
//! receives each record's bytes once, however many mesh peers announce it.

use crate::attachment::BlobHash;
use crate::id::RecordId;
use serde::{Deserialize, Serialize};

/// The gossipsub topic of this format version's announcements.
pub const GOSSIP_TOPIC: &str = "cailloux/v1";
/// The libp2p protocol of set reconciliation.
pub const SYNC_PROTOCOL: &str = "/cailloux/sync/1";
/// The libp2p protocol of fetching records by id.
pub const FETCH_PROTOCOL: &str = "/cailloux/fetch/1";
/// The Kademlia protocol name of the Cailloux DHT.
pub const KAD_PROTOCOL: &str = "/cailloux/kad/1";
/// At most this many ids in one fetch request.
pub const MAX_FETCH_IDS: usize = 512;
/// A fetch response stops adding records past this many bytes; the asker asks again for the rest.
pub const MAX_FETCH_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// The largest reconciliation frame a node sends (negentropy's frame size limit).
pub const SYNC_FRAME_LIMIT: u64 = 512 * 1024;
/// The libp2p protocol of fetching attached files, a verified segment at a time.
pub const BLOB_PROTOCOL: &str = "/cailloux/blob/1";
/// Files travel in groups of 16 KiB (BLAKE3 chunk groups of 16 chunks): the unit verified.
pub const BLOB_GROUP_BYTES: u64 = 16 * 1024;
/// A segment is at most this many groups (1 MiB).
pub const MAX_BLOB_SEGMENT_GROUPS: u32 = 64;
/// The largest segment response: its groups and the tree's parents above them.
pub const MAX_BLOB_RESPONSE_BYTES: usize = 1024 * 1024 + 64 * 1024;
/// Links a request for a file may cross: a node fetching for itself asks with `hops` =
/// `MAX_BLOB_HOPS - 1`, and a node that lacks a file that one of its records attaches fetches
/// it from its own peers to answer, with one hop less. A received `hops` above
/// `MAX_BLOB_HOPS - 1` is read as `MAX_BLOB_HOPS - 1`.
pub const MAX_BLOB_HOPS: u8 = 2;

/// "I hold record `id`": the whole gossip message, its 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    pub id: RecordId,
}

/// Why a gossip message is not an announcement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an announcement is a 32-byte record id; this message is {0} bytes")]
pub struct BadAnnounce(pub usize);

impl Announce {
    pub const LEN: usize = 32;

    pub fn encode(&self) -> [u8; Self::LEN] {
        self.id.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Announce, BadAnnounce> {
        let id: [u8; Self::LEN] = bytes.try_into().map_err(|_| BadAnnounce(bytes.len()))?;
        Ok(Announce { id: RecordId(id) })
    }
}

/// One negentropy message of a reconciliation round (the initiator's query).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

/// The responder's negentropy reply, or why it could not answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    Reply(#[serde(with = "serde_bytes")] Vec<u8>),
    Refused(String),
}

/// "Send me these records."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub ids: Vec<RecordId>,
}

/// The records asked for that the responder holds, in the order asked, as their signed bytes.
/// Ids it does not hold are left out; it may stop early to bound the response's size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub records: Vec<serde_bytes::ByteBuf>,
}

/// "Send me groups `start..start + groups` of file `hash`, of `size` bytes." `groups` is 1 to
/// `MAX_BLOB_SEGMENT_GROUPS`. `size` is what the asker's record says: the tree's shape, and so
/// the segment, depends on it, and a responder whose file has another size answers `Missing`
/// rather than bytes the asker would take for corrupt (a record that misstates a file's size
/// gets no honest peer counted against). `hops` is how many more times the responder may pass
/// the request on if it lacks the file (0: answer only from what it holds or is fetching).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRequest {
    pub hash: BlobHash,
    pub size: u64,
    pub start: u64,
    pub groups: u32,
    pub hops: u8,
}

/// A segment of a file, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponse {
    /// BLAKE3 verified streaming (bao, pre-order, 16 KiB groups) of the groups asked for that
    /// the file has: the parents from the root down, then the bytes. The asker checks every
    /// group against the hash its record signed before it writes it.
    Segment(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Not held here, and not fetched for the asker.
    Missing,
    /// Too many transfers now; ask another peer, or later.
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_refuse_other_sizes() {
        let a = Announce {
            id: RecordId([7; 32]),
        };
        assert_eq!(Announce::decode(&a.encode()), Ok(a));
        assert_eq!(Announce::decode(&[0; 39]), Err(BadAnnounce(39)));
    }
}
