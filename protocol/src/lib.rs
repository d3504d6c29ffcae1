//! The Cailloux protocol: the data model of a town's publications and the rules every node
//! agrees on. It parses a publication file, validates it, encodes it as CBOR, signs it, derives
//! its id and verifies records from elsewhere.
//!
//! It does no I/O: no files, no sockets, no clocks, no async runtime. Callers hand it bytes and
//! times and get values back, which is what lets the CLI, the node and a rogue test peer share
//! exactly the same rules.

pub mod attachment;
mod body_error;
pub mod frontmatter;
pub mod id;
pub mod publication;
pub mod record;
pub mod time;
pub mod trust;
pub mod view;
pub mod vocab;
pub mod wire;

pub use attachment::{Attachment, BlobHash, MediaType, Recogniser};
pub use ed25519_dalek::SigningKey;
pub use frontmatter::{
    Draft, DraftAttachment, DraftLink, LinkTarget, parse_partial, parse_publication,
};
pub use id::{IdPrefix, RecordId};
pub use publication::{Indicator, Link, Number, Period, Publication, Violation};
pub use record::{
    AuthorKey, BadSignature, DecodeError, FORMAT_VERSION, KeyCache, MAX_RECORD_BYTES,
    MIN_FORMAT_VERSION, Record, SignError, Unverified, read_versions_up_to, readable_version,
    verify_all,
};
pub use trust::{Act, Denied, Ledger, Mode};
pub use vocab::{Kind, LinkRel, Method, Need, Outcome, Participation, Theme};
