//! Attachments (record format v2): the files that travel beside a publication, the report as a
//! PDF, photos, a map, a table of measures. The record names each file and signs its size and
//! BLAKE3 hash; the bytes travel apart and are checked against the hash.
//!
//! Types are recognised from the content, never from the name alone: `Recogniser` reads a
//! file's bytes as they stream (it keeps at most a few hundred of them) and says whether they
//! are what the extension claims, so an HTML page named `.pdf` is refused wherever files enter
//! a node. Pure functions over bytes, like the rest of this crate.

use crate::id::{Bytes32, decode_hex, encode_hex};
use crate::publication::{MAX_TITLE_CHARS, Violation, text_rule};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// At most this many files per publication.
pub const MAX_ATTACHMENTS: usize = 10;
/// The largest file, in bytes (25 MiB).
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;
/// The most bytes of files one publication may carry (100 MiB).
pub const MAX_ATTACHMENTS_TOTAL_BYTES: u64 = 100 * 1024 * 1024;
/// The longest file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The BLAKE3 hash of a file's bytes, which names it everywhere (the record, the blob store, the
/// API): a byte string of 32 in CBOR, 64 lowercase hex characters where people read it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    /// Parses 64 hex characters, in either case.
    pub fn from_hex(s: &str) -> Option<BlobHash> {
        if s.len() != 64 {
            return None;
        }
        let bytes = decode_hex(&s.to_ascii_lowercase())?;
        Some(BlobHash(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The first 12 hex characters.
    pub fn short(&self) -> String {
        encode_hex(&self.0[..6])
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.short())
    }
}

impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bytes32::deserialize(d).map(|b| BlobHash(b.0))
    }
}

/// The file types a publication may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
    Webp,
    Csv,
    Text,
    Odt,
    Ods,
}

impl MediaType {
    pub const ALL: [MediaType; 8] = [
        MediaType::Pdf,
        MediaType::Png,
        MediaType::Jpeg,
        MediaType::Webp,
        MediaType::Csv,
        MediaType::Text,
        MediaType::Odt,
        MediaType::Ods,
    ];

    /// The IANA media type, as the record holds it and HTTP sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Webp => "image/webp",
            MediaType::Csv => "text/csv",
            MediaType::Text => "text/plain",
            MediaType::Odt => "application/vnd.oasis.opendocument.text",
            MediaType::Ods => "application/vnd.oasis.opendocument.spreadsheet",
        }
    }

    pub fn parse(s: &str) -> Option<MediaType> {
        MediaType::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The extensions a file of this type may have, the usual one first.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            MediaType::Pdf => &["pdf"],
            MediaType::Png => &["png"],
            MediaType::Jpeg => &["jpg", "jpeg"],
            MediaType::Webp => &["webp"],
            MediaType::Csv => &["csv"],
            MediaType::Text => &["txt"],
            MediaType::Odt => &["odt"],
            MediaType::Ods => &["ods"],
        }
    }

    /// The type a file name's extension claims (in either case), if it is one accepted.
    pub fn from_name(name: &str) -> Option<MediaType> {
        let (_, ext) = name.rsplit_once('.')?;
        let ext = ext.to_ascii_lowercase();
        MediaType::ALL
            .into_iter()
            .find(|m| m.extensions().contains(&ext.as_str()))
    }

    /// What a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            MediaType::Pdf => "PDF document",
            MediaType::Png => "PNG image",
            MediaType::Jpeg => "JPEG image",
            MediaType::Webp => "WebP image",
            MediaType::Csv => "CSV table",
            MediaType::Text => "plain text",
            MediaType::Odt => "OpenDocument text",
            MediaType::Ods => "OpenDocument spreadsheet",
        }
    }

    /// Images are shown in a page; every other type is downloaded.
    pub fn is_image(self) -> bool {
        matches!(self, MediaType::Png | MediaType::Jpeg | MediaType::Webp)
    }

    /// Types with no signature of their own: UTF-8 text, told apart by the extension.
    pub fn is_text(self) -> bool {
        matches!(self, MediaType::Csv | MediaType::Text)
    }

    /// The accepted types, for messages: "PDF (.pdf), PNG (.png), ...".
    pub fn accepted() -> String {
        MediaType::ALL
            .iter()
            .map(|m| format!("{} (.{})", m.label(), m.extensions().join(", .")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MediaType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not an attachment media type; they are: {}",
                MediaType::ALL.map(MediaType::as_str).join(", ")
            ))
        })
    }
}

/// One file of a publication, as the signed record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The file name (no folder): what a download is saved as.
    pub name: String,
    pub title: String,
    pub media_type: MediaType,
    /// In bytes.
    pub size: u64,
    pub hash: BlobHash,
}

/// The rules of a publication's attachments: count, sizes, names, titles, and a type that the
/// name agrees with. (The content was checked against the type where the file entered; the
/// hash ties the content to the record.)
pub(crate) fn violations(attachments: &[Attachment], v: &mut Vec<Violation>) {
    if attachments.len() > MAX_ATTACHMENTS {
        v.push(Violation::new(
            "attachments",
            format!(
                "{} files; the limit is {MAX_ATTACHMENTS} per publication",
                attachments.len()
            ),
        ));
    }
    let mut total = 0u64;
    for (i, a) in attachments.iter().enumerate() {
        let field = format!("attachments[{i}]");
        if let Err(e) = check_name(&a.name) {
            v.push(Violation::new(format!("{field}.name"), e));
        } else if MediaType::from_name(&a.name) != Some(a.media_type) {
            v.push(Violation::new(
                format!("{field}.media_type"),
                format!(
                    "`{}` is recorded as {}, which its name does not agree with",
                    a.name, a.media_type
                ),
            ));
        }
        if attachments[..i].iter().any(|b| b.name == a.name) {
            v.push(Violation::new(
                format!("{field}.name"),
                format!("`{}` is attached twice", a.name),
            ));
        }
        text_rule(v, &format!("{field}.title"), &a.title, MAX_TITLE_CHARS);
        if a.title.contains('\n') {
            v.push(Violation::new(
                format!("{field}.title"),
                "must be a single line",
            ));
        }
        if let Err(e) = check_size(&a.name, a.size) {
            v.push(Violation::new(format!("{field}.size"), e));
        }
        total = total.saturating_add(a.size);
    }
    if total > MAX_ATTACHMENTS_TOTAL_BYTES {
        v.push(Violation::new(
            "attachments",
            format!(
                "{} in all; the limit is {} per publication",
                human_size(total),
                human_size(MAX_ATTACHMENTS_TOTAL_BYTES)
            ),
        ));
    }
}

/// A file's size against the limit (and not empty).
pub fn check_size(name: &str, size: u64) -> Result<(), String> {
    if size == 0 {
        return Err(format!("`{name}` is empty"));
    }
    if size > MAX_ATTACHMENT_BYTES {
        return Err(format!(
            "`{name}` is {}; the limit is {} per file",
            human_size(size),
            human_size(MAX_ATTACHMENT_BYTES)
        ));
    }
    Ok(())
}

/// A file name as a record may hold it: no folder, nothing hidden, nothing a file system or a
/// `Content-Disposition` header would read otherwise.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a file name has 1 to {MAX_NAME_BYTES} bytes; `{name}` has {}",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err(format!(
            "`{name}` is a hidden file name (it starts with `.`)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '/' | '\\' | '"' | ':'))
    {
        return Err(format!(
            "`{}` holds {c:?}, which a file name may not",
            name.escape_debug()
        ));
    }
    if MediaType::from_name(name).is_none() {
        return Err(format!(
            "`{name}` is not of an accepted type; attach {}",
            MediaType::accepted()
        ));
    }
    Ok(())
}

/// `25.0 MiB`, `312 KiB`, `12 bytes`.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{} KiB", bytes.div_ceil(KIB))
    } else {
        format!("{bytes} bytes")
    }
}

/// How many leading bytes `Recogniser` keeps to read a signature: enough for an OpenDocument
/// file's `mimetype` entry (30 bytes of ZIP header, the name, 46 bytes of type).
pub const HEAD_BYTES: usize = 256;

/// Recognises a file's type from its content as it streams, against the type its name claims.
/// Binary types by their signature; text types (CSV, plain text) as UTF-8 without control
/// characters other than tab, line feed, carriage return and form feed, and not markup (an
/// HTML, SVG or XML document). Holds at most `HEAD_BYTES` of the file.
#[derive(Debug)]
pub struct Recogniser {
    claimed: MediaType,
    head: Vec<u8>,
    text: TextCheck,
    size: u64,
}

impl Recogniser {
    pub fn new(claimed: MediaType) -> Recogniser {
        Recogniser {
            claimed,
            head: Vec::with_capacity(HEAD_BYTES),
            text: TextCheck::default(),
            size: 0,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        let room = HEAD_BYTES - self.head.len();
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        if self.claimed.is_text() {
            self.text.feed(bytes, self.size);
        }
        self.size += bytes.len() as u64;
    }

    /// Whether what has been fed already settles that the content is not the claimed type
    /// (its head is read whole and bears another type's signature, or none for a binary type):
    /// `finish` would refuse it whatever came next, so a fetch can stop now.
    pub fn refused_already(&self) -> bool {
        if self.head.len() < HEAD_BYTES {
            return false;
        }
        match signature(&self.head) {
            Some(found) => found != self.claimed,
            None => !self.claimed.is_text(),
        }
    }

    /// Whether the content is what `name` claims; the error says what it is instead.
    pub fn finish(self, name: &str) -> Result<MediaType, String> {
        let found = signature(&self.head);
        let claimed = self.claimed;
        match found {
            Some(found) if found == claimed => Ok(claimed),
            Some(found) => Err(format!(
                "`{name}` holds a {}, not a {}: name it .{} or attach the {} itself",
                found.label(),
                claimed.label(),
                found.extensions()[0],
                claimed.label()
            )),
            None if claimed.is_text() => match self.text.finish(&self.head) {
                Ok(()) => Ok(claimed),
                Err(why) => Err(format!(
                    "`{name}` is not {}: {why}",
                    if claimed == MediaType::Csv {
                        "a CSV table (UTF-8 text)"
                    } else {
                        "plain UTF-8 text"
                    }
                )),
            },
            None => Err(format!(
                "`{name}` is not a {}: its content is {}",
                claimed.label(),
                describe(&self.head)
            )),
        }
    }
}

/// The binary type whose signature `head` (a file's first `HEAD_BYTES`, or all of a shorter
/// file) starts with; `None` for text and anything else. Which of several records' types a
/// file's bytes bear out, without reading past its head.
pub fn signature(head: &[u8]) -> Option<MediaType> {
    if head.starts_with(b"%PDF-") {
        return Some(MediaType::Pdf);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(MediaType::Png);
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some(MediaType::Jpeg);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some(MediaType::Webp);
    }
    match opendocument_type(head) {
        Some(b"application/vnd.oasis.opendocument.text") => Some(MediaType::Odt),
        Some(b"application/vnd.oasis.opendocument.spreadsheet") => Some(MediaType::Ods),
        _ => None,
    }
}

/// An OpenDocument package is a ZIP whose first entry is `mimetype`, stored uncompressed,
/// holding the document's type (OpenDocument 1.3, part 2, 3.3).
fn opendocument_type(head: &[u8]) -> Option<&[u8]> {
    if !head.starts_with(b"PK\x03\x04") || head.len() < 30 {
        return None;
    }
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([head[i], head[i + 1]]));
    let method = u16_at(8);
    let size = u32::from_le_bytes([head[18], head[19], head[20], head[21]]) as usize;
    let (name_len, extra_len) = (u16_at(26), u16_at(28));
    let name = head.get(30..30 + name_len)?;
    if method != 0 || name != b"mimetype" {
        return None;
    }
    let start = 30 + name_len + extra_len;
    head.get(start..start.checked_add(size)?)
}

/// What unrecognised content looks like, for a message.
fn describe(head: &[u8]) -> &'static str {
    if head.is_empty() {
        "empty"
    } else if markup(head).is_some() {
        "an HTML or XML document"
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive (an OpenDocument file starts with its `mimetype` entry, stored)"
    } else if std::str::from_utf8(head).is_ok()
        || matches!(std::str::from_utf8(head), Err(e) if e.error_len().is_none())
    {
        "text"
    } else {
        "of no accepted type"
    }
}

/// The markup a text starts with (after white space and a byte-order mark), if any.
fn markup(head: &[u8]) -> Option<&'static str> {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let lower: Vec<u8> = text[start..]
        .iter()
        .take(16)
        .map(u8::to_ascii_lowercase)
        .collect();
    [
        ("<!doctype", "an HTML document"),
        ("<html", "an HTML document"),
        ("<head", "an HTML document"),
        ("<body", "an HTML document"),
        ("<script", "a script"),
        ("<iframe", "an HTML document"),
        ("<svg", "an SVG image"),
        ("<?xml", "an XML document"),
        ("<!--", "an HTML or XML document"),
    ]
    .into_iter()
    .find(|(tag, _)| lower.starts_with(tag.as_bytes()))
    .map(|(_, what)| what)
}

/// UTF-8 validity and control characters across chunk boundaries.
#[derive(Debug, Default)]
struct TextCheck {
    /// The start of a character cut by the end of the last chunk (at most 3 bytes).
    carry: Vec<u8>,
    problem: Option<String>,
}

impl TextCheck {
    fn feed(&mut self, bytes: &[u8], offset: u64) {
        if self.problem.is_some() {
            return;
        }
        let carried = self.carry.len() as u64;
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(bytes);
        let base = offset - carried;
        let valid = match std::str::from_utf8(&joined) {
            Ok(s) => s,
            Err(e) if e.error_len().is_none() => {
                let (ok, rest) = joined.split_at(e.valid_up_to());
                self.carry = rest.to_vec();
                // Valid by construction.
                std::str::from_utf8(ok).unwrap_or_default()
            }
            Err(e) => {
                self.problem = Some(format!(
                    "byte {} is not UTF-8 (save the file as UTF-8)",
                    base + e.valid_up_to() as u64
                ));
                return;
            }
        };
        if let Some((i, c)) = valid
            .char_indices()
            .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
        {
            self.problem = Some(format!(
                "byte {} is the control character {c:?}, which text does not hold",
                base + i as u64
            ));
        }
    }

    fn finish(self, head: &[u8]) -> Result<(), String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if !self.carry.is_empty() {
            return Err("it ends in the middle of a UTF-8 character".into());
        }
        if let Some(what) = markup(head) {
            return Err(format!(
                "it is {what}, which is not accepted as an attachment"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recognise(name: &str, bytes: &[u8], chunk: usize) -> Result<MediaType, String> {
        let claimed = MediaType::from_name(name).ok_or("no type")?;
        let mut r = Recogniser::new(claimed);
        for c in bytes.chunks(chunk.max(1)) {
            r.feed(c);
        }
        r.finish(name)
    }

    fn odf(mime: &str) -> Vec<u8> {
        let mut z = b"PK\x03\x04".to_vec();
        z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        z.extend_from_slice(&(mime.len() as u32).to_le_bytes());
        z.extend_from_slice(&(mime.len() as u32).to_le_bytes());
        z.extend_from_slice(&8u16.to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(b"mimetype");
        z.extend_from_slice(mime.as_bytes());
        z.extend_from_slice(b"PK\x03\x04 and the rest");
        z
    }

    #[test]
    fn a_wrong_head_is_refused_as_soon_as_it_is_read_whole() {
        let mut html = Recogniser::new(MediaType::Pdf);
        html.feed(b"<!doctype html><p>");
        assert!(
            !html.refused_already(),
            "not settled before the head is whole"
        );
        html.feed(&[b'a'; HEAD_BYTES]);
        assert!(html.refused_already());
        let mut pdf = Recogniser::new(MediaType::Pdf);
        pdf.feed(b"%PDF-1.7\n");
        pdf.feed(&[b'a'; HEAD_BYTES]);
        assert!(!pdf.refused_already());
        let mut text = Recogniser::new(MediaType::Text);
        text.feed(&[b'a'; HEAD_BYTES]);
        assert!(!text.refused_already(), "text is settled only at the end");
        let mut png_as_text = Recogniser::new(MediaType::Csv);
        png_as_text.feed(b"\x89PNG\r\n\x1a\n");
        png_as_text.feed(&[0; HEAD_BYTES]);
        assert!(png_as_text.refused_already());
        assert!(png_as_text.finish("t.csv").is_err(), "as finish says");
    }

    #[test]
    fn each_type_is_recognised_from_its_content() {
        assert_eq!(recognise("r.pdf", b"%PDF-1.7\n...", 3), Ok(MediaType::Pdf));
        assert_eq!(
            recognise("c.PNG", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 5),
            Ok(MediaType::Png)
        );
        assert_eq!(
            recognise("p.jpeg", &[0xff, 0xd8, 0xff, 0xe0, 0, 16], 2),
            Ok(MediaType::Jpeg)
        );
        assert_eq!(
            recognise("p.webp", b"RIFF\x10\0\0\0WEBPVP8 ", 7),
            Ok(MediaType::Webp)
        );
        assert_eq!(
            recognise("t.odt", &odf("application/vnd.oasis.opendocument.text"), 9),
            Ok(MediaType::Odt)
        );
        assert_eq!(
            recognise(
                "t.ods",
                &odf("application/vnd.oasis.opendocument.spreadsheet"),
                64
            ),
            Ok(MediaType::Ods)
        );
        assert_eq!(
            recognise("m.csv", "quartier;économie\nA;12\n".as_bytes(), 1),
            Ok(MediaType::Csv)
        );
        assert_eq!(
            recognise("n.txt", "Été\r\n\tfin".as_bytes(), 2),
            Ok(MediaType::Text)
        );
    }

    #[test]
    fn disguised_content_is_refused_naming_the_file_and_what_it_is() {
        let e = recognise("rapport.pdf", b"<!DOCTYPE html><script>", 4)
            .err()
            .unwrap_or_default();
        assert!(e.contains("`rapport.pdf`") && e.contains("HTML"), "{e}");
        let e = recognise("photo.jpg", b"\x89PNG\r\n\x1a\n....", 4)
            .err()
            .unwrap_or_default();
        assert!(e.contains("PNG image") && e.contains(".png"), "{e}");
        let e = recognise("notes.txt", b"  <html><body>", 4)
            .err()
            .unwrap_or_default();
        assert!(e.contains("HTML"), "{e}");
        let e = recognise("notes.txt", b"%PDF-1.4", 4)
            .err()
            .unwrap_or_default();
        assert!(e.contains("PDF document"), "{e}");
        let e = recognise("t.csv", b"a;b\n\xff\xfe", 3)
            .err()
            .unwrap_or_default();
        assert!(e.contains("byte 4 is not UTF-8"), "{e}");
        let e = recognise("t.txt", b"a\0b", 1).err().unwrap_or_default();
        assert!(e.contains("control character"), "{e}");
        let e = recognise("t.txt", "é".as_bytes().split_at(1).0, 1)
            .err()
            .unwrap_or_default();
        assert!(e.contains("middle of a UTF-8 character"), "{e}");
        // A template is not the document type it starts like.
        let e = recognise(
            "t.odt",
            &odf("application/vnd.oasis.opendocument.text-template"),
            8,
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("not a OpenDocument text") || e.contains("OpenDocument"),
            "{e}"
        );
        // A ZIP that is not OpenDocument, and a short file, are not mistaken for anything.
        assert!(recognise("t.ods", b"PK\x03\x04\x14", 1).is_err());
        assert!(recognise("r.pdf", b"%PD", 1).is_err());
    }

    #[test]
    fn names_and_sizes() {
        assert!(check_name("rapport-2023.pdf").is_ok());
        for bad in [
            "",
            ".cache.pdf",
            "a/b.pdf",
            "a\\b.pdf",
            "x.docx",
            "noext",
            "a\nb.pdf",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_size("a.pdf", MAX_ATTACHMENT_BYTES).is_ok());
        let e = check_size("big.pdf", 40 * 1024 * 1024)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("`big.pdf` is 40.0 MiB; the limit is 25.0 MiB"),
            "{e}"
        );
        assert!(check_size("a.pdf", 0).is_err());
        assert_eq!(
            BlobHash::from_hex(&BlobHash([0xab; 32]).to_hex().to_uppercase()),
            Some(BlobHash([0xab; 32]))
        );
    }
}
