#!/usr/bin/env python3
"""Cailloux v1 conformance checker (record formats v1 and v2), written from PROTOCOL.md and the
golden vectors alone.

    python conformance/check.py vectors DIR     check the golden vectors of DIR (PROTOCOL.md §9)
    python conformance/check.py export FILE|-   check a JSONL export (PROTOCOL.md §8.3)

Options: -q / --quiet (vectors mode: print only failures and the summary);
         --files DIR (export mode: also check every attachment (§1.13) of every line against the
         file DIR/<hash hex>: present, `size` bytes, BLAKE3 = `hash`).
Exit status: 0 all good, 1 some check failed / some line bad (or a line's record is of a format
version newer than this checker reads, §7: reported as `newer`, not as bad), 2 usage error.

Section numbers in comments refer to PROTOCOL.md.
"""

import base64
import binascii
import calendar
import hashlib
import json
import os
import re
import struct
import sys
import unicodedata

import blake3
import cbor2
import nacl.exceptions
import nacl.signing

# ---------------------------------------------------------------------------------------------
# Constants (§1.1, §1.4, §1.5, §1.7, §1.10)

SIG_PREFIX = b"cailloux/record/v1\x00"          # §1.10, 19 bytes
MAX_RECORD = 262_144                             # §1.7
MAX_CREATED_AT = 253_402_300_799_999             # §1.5 (9999-12-31T23:59:59.999Z)
I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1       # §1.3.1 "within signed 64-bit"
MAX_DEPTH = 64  # nothing in the schema nests deeper than 6; deeper input can only be a type error

KINDS = ("experiment", "practice", "evaluation")
THEMES = ("energy", "food", "biodiversity", "eco-construction", "social-action", "economy",
          "culture", "social-link", "natural-environment", "water", "mobility", "waste",
          "participation", "governance", "education")
OUTCOMES = ("succeeded", "partial", "failed", "abandoned")
NEEDS = ("explicit", "weak-signal")
METHODS = ("self", "peer", "external", "survey", "metered")
PARTICIPATIONS = ("none", "information", "consultation", "concertation", "co-construction")
RELS = ("derived-from", "adapts", "evaluates", "supersedes", "cites")
STATUSES = ("current", "superseded", "retracted", "voided")   # §8.1 / §2.9
NEWEST_VERSION = 2                               # §1.8 step 4, §7: formats 1 and 2

# §1.13 attachments
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_SIZE = 26_214_400                 # 25 MiB, each
MAX_ATTACHMENTS_TOTAL = 104_857_600              # 100 MiB, all of a record's
MEDIA_TYPES = {                                  # media type -> extensions (any case)
    "application/pdf": ("pdf",),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/webp": ("webp",),
    "text/csv": ("csv",),
    "text/plain": ("txt",),
    "application/vnd.oasis.opendocument.text": ("odt",),
    "application/vnd.oasis.opendocument.spreadsheet": ("ods",),
}

# Key declaration orders (§1.2, §1.3, §1.3.1, §2.1) -- used for unknown-key refusal and for the
# canonical-order check of §1.6 rule 2.
BODY_KEYS = ("v", "author", "created_at", "publication", "act")
PUB_KEYS = ("kind", "title", "summary", "language", "town", "themes", "tags", "sdgs", "period",
            "participation", "licence", "links", "outcome", "need", "method", "indicators",
            "attachments", "body")
PERIOD_KEYS = ("start", "end")
LINK_KEYS = ("rel", "id")
INDICATOR_KEYS = ("name", "unit", "value", "baseline", "target", "date", "source")
ATTACHMENT_KEYS = ("name", "title", "media_type", "size", "hash")
ACT_KEYS = {
    "found": ("name",),
    "admit": ("key", "town", "country", "code", "until"),
    "delegate": ("key", "name", "role", "kinds", "until"),
    "revoke": ("key", "reason"),
    "retract": ("id", "reason"),
}

# Unicode White_Space (PropList.txt); Python's str.strip()/isspace() differ (U+001C..U+001F).
WHITE_SPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)] + [" ", "\u0085", "\u00a0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)]
    + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"])


class Fail(Exception):
    """A record refused by §1.8: cls is oversize / malformed / newer / invalid / bad_signature.
    `newer` (a format version above NEWEST_VERSION, §1.8 steps 3-4, §7) is not a fault."""

    def __init__(self, cls, msg):
        super().__init__(f"{cls}: {msg}")
        self.cls = cls
        self.msg = msg


class CborError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Ed25519 point decoding (§1.5 / §1.8 step 5): RFC 8032 §5.1.3 decoding + small-order test.

_P = 2 ** 255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _ed_decode(b):
    """RFC 8032 decoding; returns (x, y) or None."""
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little") & ((1 << 255) - 1)
    sign = b[31] >> 7
    if y >= _P:
        return None  # non-canonical encoding of y (RFC 8032 step 1)
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        if (v * x * x + u) % _P != 0:
            return None
        x = (x * _SQRT_M1) % _P
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _ed_add(p1, p2):
    x1, y1 = p1
    x2, y2 = p2
    t = (_D * x1 * x2 * y1 * y2) % _P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, _P - 2, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P
    return x3, y3


def author_key_problem(key):
    """None if key is a valid, non-small-order Ed25519 point, else a reason."""
    pt = _ed_decode(key)
    if pt is None:
        return "author is not a valid Ed25519 point encoding (RFC 8032 decoding fails)"
    q = pt
    for _ in range(3):           # q = [8]P
        q = _ed_add(q, q)
    if q == (0, 1):
        return "author is a small-order (weak) Ed25519 point"
    return None


# ---------------------------------------------------------------------------------------------
# A small CBOR decoder (RFC 8949) that keeps what the checks need and cbor2 hides: duplicate
# keys, key major types, integer vs float, float width, shortest-form and indefinite-length use.
# It is lenient exactly as §1.8 asks (non-shortest forms, indefinite lengths, tags ignored);
# every such leniency is recorded as a "non-canonical" note (§1.6).

class Item:
    __slots__ = ("t", "v", "off", "width")

    def __init__(self, t, v, off, width=0):
        self.t = t        # uint nint bstr tstr array map float simple
        self.v = v        # map: list of (key Item, value Item)
        self.off = off    # record offset of the item's first byte (after any tags)
        self.width = width


def describe(it):
    if it.t == "simple":
        return {20: "false", 21: "true", 22: "null", 23: "undefined"}.get(it.v, f"simple({it.v})")
    return {"uint": "an unsigned integer", "nint": "a negative integer", "bstr": "a byte string",
            "tstr": "a text string", "array": "an array", "map": "a map",
            "float": "a float"}[it.t]


class Decoder:
    def __init__(self, data, base):
        self.d = data
        self.p = 0
        self.base = base          # record offset of data[0]
        self.notes = []           # non-canonical encodings seen

    def at(self, off=None):
        return f"record offset {self.base + (self.p if off is None else off)}"

    def note(self, off, msg):
        self.notes.append(f"{msg} at {self.at(off)}")

    def need(self, n):
        if self.p + n > len(self.d):
            raise CborError(f"truncated CBOR at {self.at()}")

    def head(self):
        off = self.p
        self.need(1)
        ib = self.d[self.p]
        self.p += 1
        mt, ai = ib >> 5, ib & 31
        if ai < 24:
            return mt, ai, ai, off, True
        if ai <= 27:
            n = 1 << (ai - 24)
            self.need(n)
            val = int.from_bytes(self.d[self.p:self.p + n], "big")
            self.p += n
            shortest = val >= (24 if n == 1 else 1 << (8 * (n // 2)))
            return mt, ai, val, off, shortest
        if ai == 31:
            return mt, ai, None, off, True
        raise CborError(f"reserved additional information {ai} at {self.at(off)}")

    def peek_break(self):
        self.need(1)
        if self.d[self.p] == 0xFF:
            self.p += 1
            return True
        return False

    def item(self, depth=0):
        if depth > MAX_DEPTH:
            raise CborError(f"CBOR nested too deeply at {self.at()}")
        while True:
            mt, ai, val, off, sh = self.head()
            if mt != 6:
                break
            if val is None:
                raise CborError(f"indefinite-length tag at {self.at(off)}")
            self.note(off, f"tag {val} (ignored, §1.8)")
        if mt == 7:
            return self.simple_or_float(ai, val, off)
        if val is None and mt in (0, 1):
            raise CborError(f"indefinite length on an integer at {self.at(off)}")
        if not sh:
            self.note(off, "non-shortest integer or length")
        if mt == 0:
            return Item("uint", val, self.base + off)
        if mt == 1:
            return Item("nint", -1 - val, self.base + off)
        if mt in (2, 3):
            if val is None:
                self.note(off, "indefinite-length string")
                chunks = []
                while not self.peek_break():
                    cmt, cai, cval, coff, csh = self.head()
                    if cmt != mt or cval is None:
                        raise CborError(f"bad chunk in an indefinite-length string at {self.at(coff)}")
                    if not csh:
                        self.note(coff, "non-shortest length")
                    chunks.append(self.raw_string(mt, cval, coff))
                v = (b"" if mt == 2 else "").join(chunks)
            else:
                v = self.raw_string(mt, val, off)
            return Item("bstr" if mt == 2 else "tstr", v, self.base + off)
        if mt == 4:
            items = []
            if val is None:
                self.note(off, "indefinite-length array")
                while not self.peek_break():
                    items.append(self.item(depth + 1))
            else:
                if val > len(self.d) - self.p:
                    raise CborError(f"array length runs past the end at {self.at(off)}")
                for _ in range(val):
                    items.append(self.item(depth + 1))
            return Item("array", items, self.base + off)
        if mt == 5:
            pairs = []
            if val is None:
                self.note(off, "indefinite-length map")
                while not self.peek_break():
                    k = self.item(depth + 1)
                    pairs.append((k, self.item(depth + 1)))
            else:
                if 2 * val > len(self.d) - self.p:
                    raise CborError(f"map length runs past the end at {self.at(off)}")
                for _ in range(val):
                    k = self.item(depth + 1)
                    pairs.append((k, self.item(depth + 1)))
            return Item("map", pairs, self.base + off)
        raise AssertionError(mt)

    def raw_string(self, mt, n, off):
        self.need(n)
        raw = bytes(self.d[self.p:self.p + n])
        self.p += n
        if mt == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CborError(f"text string is not valid UTF-8 at {self.at(off)}") from None

    def simple_or_float(self, ai, val, off):
        if ai < 24:
            return Item("simple", ai, self.base + off)
        if ai == 24:
            if val < 32:
                raise CborError(f"simple value {val} in two-byte form (not well-formed) at {self.at(off)}")
            return Item("simple", val, self.base + off)
        if ai in (25, 26, 27):
            width = {25: 2, 26: 4, 27: 8}[ai]
            f = struct.unpack({2: ">e", 4: ">f", 8: ">d"}[width], val.to_bytes(width, "big"))[0]
            if f == f and width > 2 and _fits_smaller_float(f, width):
                self.note(off, f"float {f!r} not in its shortest exact precision")
            return Item("float", f, self.base + off, width)
        raise CborError(f"unexpected break (0xff) at {self.at(off)}")


def _fits_smaller_float(f, width):
    for fmt, w in ((">e", 2), (">f", 4)):
        if w >= width:
            break
        try:
            if struct.unpack(fmt, struct.pack(fmt, f))[0] == f:
                return True
        except (OverflowError, struct.error):
            pass
    return False


# ---------------------------------------------------------------------------------------------
# Schema (§1.2–§1.4, §2.1): Items -> plain model. Any problem here is `malformed` (§1.8 step 3).
# Model: dicts; an absent optional key (or null/undefined, §1.3) is simply not in the dict; an
# empty optional list is stored as absent too (§1.3: "empty = omitted").

def mal(msg):
    return Fail("malformed", msg)


class Schema:
    def __init__(self, dec):
        self.dec = dec
        self.attachments_key = False   # `attachments` written (even as []): not a v1 key (§1.13)

    def noncanon(self, it, msg):
        self.dec.notes.append(f"{msg} at record offset {it.off}")

    def is_null(self, it):
        return it.t == "simple" and it.v in (22, 23)

    def map(self, it, path, keys):
        if it.t != "map":
            raise mal(f"{path}: expected a map, found {describe(it)}")
        out = {}
        last = -1
        ordered = True
        for k, v in it.v:
            if k.t == "tstr":
                name = k.v
            elif k.t == "bstr":
                self.noncanon(k, f"{path}: map key given as a byte string")
                try:
                    name = k.v.decode("utf-8")
                except UnicodeDecodeError:
                    raise mal(f"{path}: map key is a byte string that is not UTF-8") from None
            else:
                raise mal(f"{path}: map key is {describe(k)}, not a text string")
            if name not in keys:
                raise mal(f"{path}: unknown key {name!r}")
            if name in out:
                raise mal(f"{path}: duplicate key {name!r}")
            idx = keys.index(name)
            if idx < last:
                ordered = False
            last = idx
            out[name] = v
        if not ordered:
            self.noncanon(it, f"{path}: keys not in declaration order")
        return out

    def required(self, m, name, path):
        if name not in m:
            raise mal(f"{path}: required key {name!r} missing")
        return m[name]

    def optional(self, m, name, path):
        """Optional scalar/map: absent, null or undefined -> None."""
        it = m.get(name)
        if it is None:
            return None
        if self.is_null(it):
            self.noncanon(it, f"{path}.{name}: null/undefined written for an absent optional field")
            return None
        return it

    def optional_list(self, m, name, path, allow_bstr=False):
        """Optional list: absent or [] -> None; null refused (§1.3)."""
        it = m.get(name)
        if it is None:
            return None
        if it.t == "bstr" and allow_bstr:
            self.noncanon(it, f"{path}.{name}: byte string instead of an array")
            if not it.v:
                self.noncanon(it, f"{path}.{name}: empty optional list written")
                return None
            return [Item("uint", b, it.off) for b in it.v]
        if it.t != "array":
            raise mal(f"{path}.{name}: expected an array, found {describe(it)}")
        if not it.v:
            self.noncanon(it, f"{path}.{name}: empty optional list written instead of omitted")
            return None
        return it.v

    # scalar types
    def uint(self, it, path):
        if it.t != "uint":
            raise mal(f"{path}: expected an unsigned integer, found {describe(it)}")
        return it.v

    def tstr(self, it, path):
        if it.t != "tstr":
            raise mal(f"{path}: expected a text string, found {describe(it)}")
        return it.v

    def bstr32(self, it, path):
        if it.t != "bstr":
            raise mal(f"{path}: expected a byte string, found {describe(it)}")
        if len(it.v) != 32:
            raise mal(f"{path}: expected 32 bytes, found {len(it.v)}")
        return it.v

    def slug(self, it, path, vocab):
        s = self.tstr(it, path)
        if s not in vocab:
            raise mal(f"{path}: unknown slug {s!r}")
        return s

    def date(self, it, path):
        s = self.tstr(it, path)
        if not valid_date(s):
            raise mal(f"{path}: malformed date {s!r}")
        return s

    def number(self, it, path):
        if it.t == "float":
            return it.v
        if it.t == "uint":
            if it.v > I64_MAX:
                # §10: "integers above 2^63 in a number decode as floats" (reference behaviour)
                self.noncanon(it, f"{path}: integer above the signed 64-bit range, taken as a float")
                return float(it.v)
            return it.v
        if it.t == "nint":
            if it.v < I64_MIN:
                raise mal(f"{path}: integer below the signed 64-bit range")
            return it.v
        raise mal(f"{path}: expected a number, found {describe(it)}")

    # structures
    def body(self, it):
        m = self.map(it, "body", BODY_KEYS)
        out = {
            "v": self.uint(self.required(m, "v", "body"), "body.v"),
            "author": self.bstr32(self.required(m, "author", "body"), "body.author"),
            "created_at": self.uint(self.required(m, "created_at", "body"), "body.created_at"),
        }
        p = self.optional(m, "publication", "body")
        if p is not None:
            out["publication"] = self.publication(p)
        a = self.optional(m, "act", "body")
        if a is not None:
            out["act"] = self.act(a)
        return out

    def publication(self, it):
        path = "publication"
        m = self.map(it, path, PUB_KEYS)
        req = lambda k: self.required(m, k, path)  # noqa: E731
        p = {"kind": self.slug(req("kind"), f"{path}.kind", KINDS),
             "title": self.tstr(req("title"), f"{path}.title"),
             "summary": self.tstr(req("summary"), f"{path}.summary"),
             "language": self.tstr(req("language"), f"{path}.language"),
             "town": self.tstr(req("town"), f"{path}.town")}
        th = req("themes")
        if th.t != "array":
            raise mal(f"{path}.themes: expected an array, found {describe(th)}")
        p["themes"] = [self.slug(x, f"{path}.themes[{i}]", THEMES) for i, x in enumerate(th.v)]
        v = self.optional_list(m, "tags", path)
        if v is not None:
            p["tags"] = [self.tstr(x, f"{path}.tags[{i}]") for i, x in enumerate(v)]
        v = self.optional_list(m, "sdgs", path, allow_bstr=True)
        if v is not None:
            sd = []
            for i, x in enumerate(v):
                n = self.uint(x, f"{path}.sdgs[{i}]")
                if n > 255:
                    raise mal(f"{path}.sdgs[{i}]: value {n} above 255")
                sd.append(n)
            p["sdgs"] = sd
        v = self.optional(m, "period", path)
        if v is not None:
            pm = self.map(v, f"{path}.period", PERIOD_KEYS)
            per = {"start": self.date(self.required(pm, "start", f"{path}.period"), f"{path}.period.start")}
            e = self.optional(pm, "end", f"{path}.period")
            if e is not None:
                per["end"] = self.date(e, f"{path}.period.end")
            p["period"] = per
        v = self.optional(m, "participation", path)
        if v is not None:
            p["participation"] = self.slug(v, f"{path}.participation", PARTICIPATIONS)
        p["licence"] = self.tstr(req("licence"), f"{path}.licence")
        v = self.optional_list(m, "links", path)
        if v is not None:
            links = []
            for i, x in enumerate(v):
                lp = f"{path}.links[{i}]"
                lm = self.map(x, lp, LINK_KEYS)
                links.append({"rel": self.slug(self.required(lm, "rel", lp), f"{lp}.rel", RELS),
                              "id": self.bstr32(self.required(lm, "id", lp), f"{lp}.id")})
            p["links"] = links
        for k, vocab in (("outcome", OUTCOMES), ("need", NEEDS), ("method", METHODS)):
            v = self.optional(m, k, path)
            if v is not None:
                p[k] = self.slug(v, f"{path}.{k}", vocab)
        v = self.optional_list(m, "indicators", path)
        if v is not None:
            p["indicators"] = [self.indicator(x, f"{path}.indicators[{i}]") for i, x in enumerate(v)]
        self.attachments_key = "attachments" in m
        v = self.optional_list(m, "attachments", path)
        if v is not None:
            p["attachments"] = [self.attachment(x, f"{path}.attachments[{i}]")
                                for i, x in enumerate(v)]
        p["body"] = self.tstr(req("body"), f"{path}.body")
        return p

    def attachment(self, it, path):
        """§1.13: all five keys required; the Type column (tstr, uint, bstr of 32) is decoding,
        the Rule column (names, media types, sizes) is validity (§1.5, checked later)."""
        m = self.map(it, path, ATTACHMENT_KEYS)
        req = lambda k: self.required(m, k, path)  # noqa: E731
        return {"name": self.tstr(req("name"), f"{path}.name"),
                "title": self.tstr(req("title"), f"{path}.title"),
                "media_type": self.tstr(req("media_type"), f"{path}.media_type"),
                "size": self.uint(req("size"), f"{path}.size"),
                "hash": self.bstr32(req("hash"), f"{path}.hash")}

    def indicator(self, it, path):
        m = self.map(it, path, INDICATOR_KEYS)
        ind = {"name": self.tstr(self.required(m, "name", path), f"{path}.name"),
               "unit": self.tstr(self.required(m, "unit", path), f"{path}.unit"),
               "value": self.number(self.required(m, "value", path), f"{path}.value")}
        for k in ("baseline", "target"):
            v = self.optional(m, k, path)
            if v is not None:
                ind[k] = self.number(v, f"{path}.{k}")
        v = self.optional(m, "date", path)
        if v is not None:
            ind["date"] = self.date(v, f"{path}.date")
        v = self.optional(m, "source", path)
        if v is not None:
            ind["source"] = self.tstr(v, f"{path}.source")
        return ind

    def act(self, it):
        if it.t != "map":
            raise mal(f"act: expected a map, found {describe(it)}")
        if len(it.v) != 1:
            raise mal(f"act: expected exactly one entry, found {len(it.v)}")
        try:
            outer = self.map(it, "act", tuple(ACT_KEYS))   # checks key type and name
        except Fail as e:
            raise mal(e.msg.replace("unknown key", "unknown act name")) from None
        (name, inner), = outer.items()
        path = f"act.{name}"
        m = self.map(inner, path, ACT_KEYS[name])
        req = lambda k: self.required(m, k, path)  # noqa: E731
        f = {}
        if name == "found":
            f["name"] = self.tstr(req("name"), f"{path}.name")
        elif name == "admit":
            f["key"] = self.bstr32(req("key"), f"{path}.key")
            f["town"] = self.tstr(req("town"), f"{path}.town")
            f["country"] = self.tstr(req("country"), f"{path}.country")
            v = self.optional(m, "code", path)
            if v is not None:
                f["code"] = self.tstr(v, f"{path}.code")
            v = self.optional(m, "until", path)
            if v is not None:
                f["until"] = self.uint(v, f"{path}.until")
        elif name == "delegate":
            f["key"] = self.bstr32(req("key"), f"{path}.key")
            f["name"] = self.tstr(req("name"), f"{path}.name")
            v = self.optional(m, "role", path)
            if v is not None:
                f["role"] = self.tstr(v, f"{path}.role")
            v = self.optional_list(m, "kinds", path)
            if v is not None:
                f["kinds"] = [self.slug(x, f"{path}.kinds[{i}]", KINDS) for i, x in enumerate(v)]
            v = self.optional(m, "until", path)
            if v is not None:
                f["until"] = self.uint(v, f"{path}.until")
        elif name == "revoke":
            f["key"] = self.bstr32(req("key"), f"{path}.key")
            f["reason"] = self.tstr(req("reason"), f"{path}.reason")
        elif name == "retract":
            f["id"] = self.bstr32(req("id"), f"{path}.id")
            f["reason"] = self.tstr(req("reason"), f"{path}.reason")
        return {"name": name, "fields": f}


DATE_RE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")


def valid_date(s):
    """§1.3.1 date: YYYY, YYYY-MM or YYYY-MM-DD, year >= 1000, real month/day (proleptic)."""
    m = DATE_RE.fullmatch(s)
    if not m:
        return False
    y = int(m.group(1))
    if y < 1000:
        return False
    if m.group(2) is not None:
        mo = int(m.group(2))
        if not 1 <= mo <= 12:
            return False
        if m.group(3) is not None:
            d = int(m.group(3))
            if not 1 <= d <= calendar.monthrange(y, mo)[1]:
                return False
    return True


def date_tuple(s):
    parts = [int(x) for x in s.split("-")]
    return parts + [None] * (3 - len(parts))


# ---------------------------------------------------------------------------------------------
# Validity rules (§1.5, §2.2): `invalid` (§1.8 step 6).

def trimmed(s):
    a, b = 0, len(s)
    while a < b and s[a] in WHITE_SPACE:
        a += 1
    while b > a and s[b - 1] in WHITE_SPACE:
        b -= 1
    return s[a:b]


def text_rule(s, path, maxlen, nonempty_trimmed=True):
    if nonempty_trimmed and not trimmed(s):
        return f"{path} is empty after trimming"
    if len(s) > maxlen:
        return f"{path} has {len(s)} characters, more than {maxlen}"
    return None


LANG_FIRST = re.compile(r"[A-Za-z]{2,3}")
LANG_REST = re.compile(r"[A-Za-z0-9]{1,8}")
LICENCE_RE = re.compile(r"[A-Za-z0-9+\-.]{1,64}")


def validity_problem(body, attachments_key=False):
    if body["created_at"] > MAX_CREATED_AT:
        return (f"created_at {body['created_at']} is after 9999-12-31T23:59:59.999Z "
                f"({MAX_CREATED_AT})")
    has_p, has_a = "publication" in body, "act" in body
    if has_p == has_a:
        return "body has both publication and act" if has_p else "body has neither publication nor act"
    if has_p:
        # §1.13: "A v1 body with `attachments` is invalid" (read literally: the key, even as [])
        if body["v"] == 1 and attachments_key:
            return "publication.attachments in a v1 body (format v2 only, §1.13)"
        return publication_problem(body["publication"])
    return act_problem(body["act"], body["author"])


def publication_problem(p):
    P = "publication"
    for path, s, n in ((f"{P}.title", p["title"], 250), (f"{P}.summary", p["summary"], 2000),
                       (f"{P}.town", p["town"], 120)):
        r = text_rule(s, path, n)
        if r:
            return r
    if "\n" in p["title"]:
        return f"{P}.title contains a line feed (U+000A)"
    parts = p["language"].split("-")
    if not LANG_FIRST.fullmatch(parts[0]) or not all(LANG_REST.fullmatch(x) for x in parts[1:]):
        return f"{P}.language {p['language']!r} is not a valid tag"
    if not LICENCE_RE.fullmatch(p["licence"]):
        return f"{P}.licence {p['licence']!r} is not 1-64 bytes of A-Z a-z 0-9 + - ."
    if not p["themes"]:
        return f"{P}.themes is empty"
    if len(set(p["themes"])) != len(p["themes"]):
        return f"{P}.themes has a duplicate"
    sd = p.get("sdgs", [])
    for n in sd:
        if not 1 <= n <= 17:
            return f"{P}.sdgs has {n}, outside 1..17"
    if len(set(sd)) != len(sd):
        return f"{P}.sdgs has a duplicate"
    tags = p.get("tags", [])
    if len(tags) > 32:
        return f"{P}.tags has {len(tags)} items, more than 32"
    for i, t in enumerate(tags):
        r = text_rule(t, f"{P}.tags[{i}]", 64)
        if r:
            return r
    links = p.get("links", [])
    if len(links) > 64:
        return f"{P}.links has {len(links)} items, more than 64"
    inds = p.get("indicators", [])
    if len(inds) > 64:
        return f"{P}.indicators has {len(inds)} items, more than 64"
    per = p.get("period")
    if per is not None and "end" in per:
        s, e = date_tuple(per["start"]), date_tuple(per["end"])
        mon = s[1] is not None and e[1] is not None
        day = mon and s[2] is not None and e[2] is not None
        ts = (s[0], s[1] if mon else 0, s[2] if day else 0)
        te = (e[0], e[1] if mon else 0, e[2] if day else 0)
        if te < ts:
            return f"{P}.period.end {per['end']!r} is before start {per['start']!r}"
    kind = p["kind"]
    for k in ("outcome", "need"):
        if k in p and kind != "experiment":
            return f"{P}.{k} on a {kind} (experiments only)"
    for k in ("method", "indicators"):
        if k in p and kind != "evaluation":
            return f"{P}.{k} on a {kind} (evaluations only)"
    if kind == "experiment" and "outcome" not in p:
        return f"{P}: experiment without outcome"
    if kind == "evaluation":
        if "method" not in p:
            return f"{P}: evaluation without method"
        if not inds:
            return f"{P}: evaluation without indicators"
        if not any(l["rel"] == "evaluates" for l in links):
            return f"{P}: evaluation without a link with rel 'evaluates'"
    for i, ind in enumerate(inds):
        ip = f"{P}.indicators[{i}]"
        for k, n in (("name", 200), ("unit", 50), ("source", 500)):
            if k in ind:
                r = text_rule(ind[k], f"{ip}.{k}", n)
                if r:
                    return r
        for k in ("value", "baseline", "target"):
            v = ind.get(k)
            if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
                return f"{ip}.{k} is not finite"
    return attachments_problem(p.get("attachments", []))


def attachment_name_problem(name, media_type, path):
    """§1.13 `name`: 1-255 bytes, not starting with '.', no / \\ " : or control character (Cc),
    an extension (after the last '.', any case) among the media type's."""
    n = len(name.encode("utf-8"))
    if not 1 <= n <= 255:
        return f"{path} {name!r} is {n} bytes, not 1-255"
    if name.startswith("."):
        return f"{path} {name!r} starts with '.'"
    for c in name:
        if c in '/\\":':
            return f"{path} {name!r} contains {c!r}"
        if unicodedata.category(c) == "Cc":
            return f"{path} {name!r} contains the control character U+{ord(c):04X}"
    exts = MEDIA_TYPES.get(media_type)
    if exts is not None:
        dot = name.rfind(".")
        ext = name[dot + 1:] if dot >= 0 else None
        if ext is None or ext.lower() not in exts:
            what = "has no extension" if ext is None else f"has the extension {ext!r}"
            return (f"{path} {name!r} {what}, not one of {media_type}'s "
                    f"({', '.join(exts)}, any case)")
    return None


def attachments_problem(atts):
    """§1.13 rules (and §1.3's limit of 10)."""
    P = "publication.attachments"
    if len(atts) > MAX_ATTACHMENTS:
        return f"{P} has {len(atts)} items, more than {MAX_ATTACHMENTS}"
    names = set()
    total = 0
    for i, a in enumerate(atts):
        ap = f"{P}[{i}]"
        if a["media_type"] not in MEDIA_TYPES:
            return f"{ap}.media_type {a['media_type']!r} is not one of §1.13's media types"
        r = attachment_name_problem(a["name"], a["media_type"], f"{ap}.name")
        if r:
            return r
        if a["name"] in names:
            return f"{ap}.name {a['name']!r} is the name of an earlier attachment of this record"
        names.add(a["name"])
        r = text_rule(a["title"], f"{ap}.title", 250)
        if r:
            return r
        if "\n" in a["title"]:
            return f"{ap}.title contains a line feed (U+000A)"
        if not 1 <= a["size"] <= MAX_ATTACHMENT_SIZE:
            return f"{ap}.size {a['size']} is not 1 to {MAX_ATTACHMENT_SIZE} bytes (25 MiB)"
        total += a["size"]
    if total > MAX_ATTACHMENTS_TOTAL:
        return f"{P}: sizes add up to {total} bytes, more than {MAX_ATTACHMENTS_TOTAL} (100 MiB)"
    return None


def act_problem(act, author):
    name, f = act["name"], act["fields"]
    A = f"act.{name}"
    if name == "found":
        return text_rule(f["name"], f"{A}.name", 120)
    if name == "admit":
        r = (text_rule(f["town"], f"{A}.town", 120)
             or text_rule(f["country"], f"{A}.country", 60, nonempty_trimmed=False))
        if r:
            return r
        if "code" in f:
            if f["code"] == "":
                return f"{A}.code is empty"
            r = text_rule(f["code"], f"{A}.code", 32, nonempty_trimmed=False)
            if r:
                return r
        if f["key"] == author:
            return f"{A}.key equals the body's author"
        return None
    if name == "delegate":
        r = text_rule(f["name"], f"{A}.name", 120)
        if r:
            return r
        if "role" in f:
            r = text_rule(f["role"], f"{A}.role", 120)
            if r:
                return r
        if f["key"] == author:
            return f"{A}.key equals the body's author"
        kinds = f.get("kinds", [])
        if len(set(kinds)) != len(kinds):
            return f"{A}.kinds has a duplicate"
        return None
    # revoke, retract: "non-empty, <= 1000 characters" (§2.2 does not say "when trimmed")
    if f["reason"] == "":
        return f"{A}.reason is empty"
    return text_rule(f["reason"], f"{A}.reason", 1000, nonempty_trimmed=False)


# ---------------------------------------------------------------------------------------------
# Record decoding, §1.8 in order.

class Record:
    def __init__(self, data):
        self.data = bytes(data)
        self.id = blake3.blake3(self.data).digest()           # §1.9, over the received bytes
        self.id_hex = self.id.hex()
        self.body_off = None
        self.body_bytes = None
        self.sig = None
        self.body = None                                      # model, once step 3 passed
        self.notes = []                                       # non-canonical body encodings
        self.version = None                                   # body `v`, once step 3 passed
        self.signature_ok = None


def parse_envelope(data):
    """§1.1: returns (body offset, body bytes, signature)."""
    if len(data) < 1 or data[0] != 0x82:
        raise Fail("malformed", "envelope: first byte is not 0x82 (array of 2)")

    def bstr_header(pos, what):
        if pos >= len(data):
            raise Fail("malformed", f"envelope: {what} header missing (record ends at {pos})")
        ib = data[pos]
        if ib >> 5 != 2:
            raise Fail("malformed", f"envelope: {what} at offset {pos} is not a byte string (0x{ib:02x})")
        ai = ib & 31
        if ai < 24:
            return ai, pos + 1
        if ai == 27:
            raise Fail("malformed", f"envelope: {what} at offset {pos} uses an 8-byte length (0x5b)")
        if ai == 31:
            raise Fail("malformed", f"envelope: {what} at offset {pos} has indefinite length (0x5f)")
        if ai > 27:
            raise Fail("malformed", f"envelope: {what} at offset {pos} has reserved header 0x{ib:02x}")
        k = 1 << (ai - 24)
        if pos + 1 + k > len(data):
            raise Fail("malformed", f"envelope: {what} length at offset {pos} runs past the end")
        n = int.from_bytes(data[pos + 1:pos + 1 + k], "big")
        if n < (24 if k == 1 else 1 << (8 * (k // 2))):
            raise Fail("malformed", f"envelope: {what} length {n} at offset {pos} not in shortest form")
        return n, pos + 1 + k

    n, p = bstr_header(1, "body")
    if p + n > len(data):
        raise Fail("malformed", f"envelope: body of {n} bytes at offset {p} runs past the end")
    body_off, body = p, data[p:p + n]
    s, q = bstr_header(p + n, "signature")
    if s != 64:
        raise Fail("malformed", f"envelope: signature is {s} bytes, not 64")
    if q + 64 > len(data):
        raise Fail("malformed", f"envelope: signature at offset {q} runs past the end")
    if q + 64 != len(data):
        raise Fail("malformed", f"envelope: {len(data) - q - 64} bytes after the signature")
    return body_off, body, data[q:q + 64]


def verify_signature(author, body, sig, prefix=SIG_PREFIX):
    try:
        nacl.signing.VerifyKey(author).verify(prefix + body, sig)
        return True
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False


def newer_message(v):
    return (f"format version v = {v}, newer than the versions this checker reads "
            f"(1 to {NEWEST_VERSION}): written by a later release, not a fault (§1.8, §7)")


def peek_version(it):
    """§1.8 step 3: the body "read only for its `v` key": the uint under the one key "v" of a
    map (a byte-string key b"v" counts, as in Schema.map), else None."""
    if it.t != "map":
        return None
    vs = [v for k, v in it.v if (k.t == "tstr" and k.v == "v") or (k.t == "bstr" and k.v == b"v")]
    if len(vs) != 1 or vs[0].t != "uint":
        return None
    return vs[0].v


def decode_record(data, rec=None):
    """§1.8 steps 1-7. Returns a Record; raises Fail with the first failure (rec keeps what was
    learned before the failure, e.g. the body model for `invalid` and `bad_signature`)."""
    rec = rec if rec is not None else Record(data)
    data = rec.data
    if len(data) > MAX_RECORD:                                          # step 1
        raise Fail("oversize", f"record is {len(data)} bytes, more than {MAX_RECORD}")
    rec.body_off, rec.body_bytes, rec.sig = parse_envelope(data)        # step 2
    dec = Decoder(rec.body_bytes, rec.body_off)                         # step 3
    try:
        it = dec.item()
        if dec.p != len(rec.body_bytes):
            raise CborError(f"{len(rec.body_bytes) - dec.p} bytes after the body map "
                            f"at record offset {rec.body_off + dec.p}")
    except CborError as e:
        raise Fail("malformed", f"body: {e}") from None
    schema = Schema(dec)
    try:
        body = schema.body(it)
    except Fail as e:
        # step 3: `newer` when the body, read only for its `v` key, is a map whose `v` is greater
        # than the newest version this checker reads (a later version may add keys)
        v = peek_version(it)
        if v is not None and v > NEWEST_VERSION:
            raise Fail("newer", newer_message(v)) from None
        raise e from None
    rec.version = body["v"]
    if body["v"] > NEWEST_VERSION:                                      # step 4
        raise Fail("newer", newer_message(body["v"]))
    rec.notes = dec.notes     # (not for a newer body: its canonical form is not ours to judge)
    if body["v"] == 0:
        raise Fail("malformed", "unsupported version v = 0")
    if body["v"] == 2 and not body.get("publication", {}).get("attachments"):
        # §1.13 / §7: "a writer uses the oldest [version] that holds the record"; no rule of
        # §1.5 or §1.13 makes such a body invalid for a reader, so only a note (like §1.6).
        rec.notes.append("v = 2 on a record without attachments (a writer uses v1 for it, "
                         "§1.13, §7)")
    prob = author_key_problem(body["author"])                           # step 5
    if prob:
        raise Fail("malformed", prob)
    rec.body = body
    prob = validity_problem(body, schema.attachments_key)               # step 6
    rec.signature_ok = verify_signature(body["author"], rec.body_bytes, rec.sig)
    if prob:
        raise Fail("invalid", prob)
    if not rec.signature_ok:                                            # step 7
        raise Fail("bad_signature", "signature does not verify")
    return rec


# ---------------------------------------------------------------------------------------------
# Readable fields (§8.2) and times (§1.11).

def rfc3339_ms(ms):
    """RFC 3339 UTC with exactly 3 fractional digits and Z. Years above 9999 (only possible for
    `until`, which is any uint) are written with as many digits as needed: §8.2 does not say."""
    days, rem = divmod(ms, 86_400_000)
    z = days + 719_468                                  # civil_from_days (proleptic Gregorian)
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += m <= 2
    h, rem = divmod(rem, 3_600_000)
    mi, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{y:04d}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{milli:03d}Z"


def readable_fields(rec):
    b = rec.body
    if "publication" in b:
        p = b["publication"]
        out = {"id": rec.id_hex, "kind": p["kind"], "title": p["title"], "town": p["town"],
               "author": b["author"].hex(), "themes": list(p["themes"]),
               "created_at": rfc3339_ms(b["created_at"]), "summary": p["summary"],
               "language": p["language"], "tags": list(p.get("tags", [])),
               "sdgs": list(p.get("sdgs", []))}
        per = p.get("period")
        out["period"] = None if per is None else {"start": per["start"], "end": per.get("end")}
        out["participation"] = p.get("participation")
        out["licence"] = p["licence"]
        out["links"] = [{"rel": l["rel"], "id": l["id"].hex()} for l in p.get("links", [])]
        if p["kind"] == "experiment":
            out["outcome"] = p.get("outcome")
            out["need"] = p.get("need")
        if p["kind"] == "evaluation":
            out["method"] = p.get("method")
            inds = []
            for ind in p.get("indicators", []):
                o = {k: ind[k] for k in INDICATOR_KEYS if k in ind}
                inds.append(o)
            out["indicators"] = inds
        if p.get("attachments"):
            # Not in §8.2's table (PROTOCOL.md does not say how an export line shows attachments).
            # Chosen here: after the kind-specific fields and before `body` (declaration order,
            # like the rest of the table), only on a publication that has attachments (so v1
            # lines are unchanged), each with §1.13's keys in order and `hash` in hex ("hex
            # where people read it", §1.13), `size` an integer.
            out["attachments"] = [{"name": a["name"], "title": a["title"],
                                   "media_type": a["media_type"], "size": a["size"],
                                   "hash": a["hash"].hex()} for a in p["attachments"]]
        out["body"] = p["body"]
        return out
    a = b["act"]
    name, f = a["name"], a["fields"]
    out = {"id": rec.id_hex, "act": name, "author": b["author"].hex(),
           "created_at": rfc3339_ms(b["created_at"])}
    until = lambda: rfc3339_ms(f["until"]) if "until" in f else None  # noqa: E731
    if name == "found":
        out["name"] = f["name"]
    elif name == "admit":
        out.update(key=f["key"].hex(), town=f["town"], country=f["country"],
                   code=f.get("code"), until=until())
    elif name == "delegate":
        out.update(key=f["key"].hex(), name=f["name"], role=f.get("role"),
                   kinds=list(f.get("kinds", [])), until=until())
    elif name == "revoke":
        out.update(key=f["key"].hex(), reason=f["reason"])
    elif name == "retract":
        out.update(target=f["id"].hex(), reason=f["reason"])
    return out


def json_equal(a, b):
    """JSON value equality: integer and float are different values (§8.3 step 4)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) or isinstance(b, int):
        return type(a) is int and type(b) is int and a == b
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is float and type(b) is float and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(json_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(json_equal(a[k], b[k]) for k in a))
    return type(a) is type(b) and a == b


ABSENT = object()


def json_first_difference(a, b, path):
    """(path, a part, b part) of the first place where JSON values a and b differ, or None."""
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            d = json_first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        if len(a) != len(b):
            return (f"{path} (length)", len(a), len(b))
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(b) + [k for k in a if k not in b]:
            if k not in a:
                return (f"{path}.{k}", ABSENT, b[k])
            if k not in b:
                return (f"{path}.{k}", a[k], ABSENT)
            d = json_first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    return None if json_equal(a, b) else (path, a, b)


def short(v, n=70):
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[:n - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Export mode (§8.3)

class JsonLineError(Exception):
    pass


def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise JsonLineError(f"duplicate JSON key {k!r}")
        d[k] = v
    return d


def _no_constant(name):
    raise JsonLineError(f"{name} is not JSON")


def check_export_line(text):
    """Returns (reasons, warnings) for one non-blank line (a `newer` record is a reason here)."""
    reasons, warnings, newer = check_export_line_ex(text)
    if newer:
        reasons = [f"record newer: {newer}"] + reasons
    return reasons, warnings


def check_export_line_ex(text, files=None, cache=None):
    """Returns (reasons, warnings, newer) for one non-blank line: newer is None, or why the
    record is of a later format version (§1.8, §7), in which case only the envelope, the size
    and `id` could be checked. files: a directory whose files DIR/<hash hex> are checked
    against the record's attachments (§1.13)."""
    reasons, warnings = [], []
    newer = None
    try:
        obj = json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_constant)
    except JsonLineError as e:
        return [f"not a valid JSON object: {e}"], warnings, None
    except ValueError as e:
        return [f"not JSON: {e}"], warnings, None
    if not isinstance(obj, dict):
        return [f"not a JSON object (found {type(obj).__name__})"], warnings, None
    # step 1
    rec_b64 = obj.get("record")
    if "record" not in obj:
        return ["no `record` field"], warnings, None
    if not isinstance(rec_b64, str):
        return [f"`record` is not a string ({short(rec_b64, 30)})"], warnings, None
    try:
        raw = binascii.a2b_base64(rec_b64.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        return [f"`record` is not standard padded base64: {e}"], warnings, None
    if base64.b64encode(raw).decode("ascii") != rec_b64:
        return ["`record` is not canonical standard base64 (non-zero padding bits)"], warnings, None
    # step 2 and 3
    rec = Record(raw)
    decoded = True
    try:
        decode_record(raw, rec)
    except Fail as e:
        if e.cls == "newer":
            newer = e.msg
        else:
            reasons.append(f"record {e.cls}: {e.msg}")
        decoded = rec.body is not None  # invalid / bad_signature still have a body model
        if e.cls == "invalid" and rec.signature_ok is False:
            reasons.append("signature does not verify")
    except Exception as e:  # never crash on a line
        reasons.append(f"record cannot be decoded: {type(e).__name__}: {e}")
        decoded = False
    if rec.notes:
        warnings.append("non-canonical body (accepted per §1.8): " + "; ".join(rec.notes[:5])
                        + (f"; … ({len(rec.notes)} in all)" if len(rec.notes) > 5 else ""))
    if "id" not in obj:
        reasons.append("readable field `id` missing")
    elif obj["id"] != rec.id_hex:
        reasons.append(f"`id` is {short(obj['id'], 80)} but the record's BLAKE3 is {rec.id_hex}")
    # step 4 and 6
    if decoded:
        derived = readable_fields(rec)
        for k, v in derived.items():
            if k == "id":
                continue
            if k not in obj:
                reasons.append(f"readable field `{k}` missing")
            elif not json_equal(obj[k], v):
                detail = ""
                if isinstance(v, (list, dict)):
                    d = json_first_difference(obj[k], v, k)
                    if d:
                        sh = lambda x: "no such key" if x is ABSENT else short(x, 40)  # noqa: E731
                        detail = f" (first difference at {d[0]}: line has {sh(d[1])}, " \
                                 f"record has {sh(d[2])})"
                reasons.append(f"`{k}` differs from the record: line has {short(obj[k])}, "
                               f"record has {short(v)}" + detail)
        allowed = set(derived) | {"status", "certified", "record"}
        for k in obj:
            if k not in allowed:
                reasons.append(f"unknown field `{k}` (not a readable field of this "
                               f"{'publication' if 'kind' in derived else 'act'}, §8.1)")
        if files is not None:
            reasons += attachment_file_problems(rec, files, cache if cache is not None else {},
                                                warnings)
    elif newer is None:
        reasons.append("readable fields not checked (record does not decode)")
    # step 5 (§8.3: "when present"; §8.1 says a line holds both: absence is only a warning)
    for k in ("status", "certified"):
        if k not in obj:
            warnings.append(f"`{k}` absent (§8.1 says a line holds it)")
    if "status" in obj and obj["status"] not in STATUSES:
        reasons.append(f"`status` {short(obj['status'], 40)} is not one of {', '.join(STATUSES)}")
    if "certified" in obj and type(obj["certified"]) is not bool:
        reasons.append(f"`certified` {short(obj['certified'], 40)} is not true or false")
    return reasons, warnings, newer


# --- --files DIR: the attached files themselves (§1.13, §4.6) --------------------------------

ZIP_LOCAL = b"PK\x03\x04"


def utf8_text_problem(data):
    """§1.13 "UTF-8 text": valid UTF-8, no control character but tab, LF, CR and FF, and not
    starting (after white space and a BOM) with HTML, SVG or XML markup. "Markup" is read here as
    '<' followed by a letter, '!', '?' or '/' (the document does not define it)."""
    try:
        t = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 ({e})"
    for i, c in enumerate(t):
        if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f":
            return f"control character U+{ord(c):04X} at character {i}"
    i = 0
    while i < len(t) and (t[i] in WHITE_SPACE or t[i] == "\ufeff"):
        i += 1
    if t[i:i + 1] == "<" and (t[i + 1:i + 2].isalpha() or t[i + 1:i + 2] in ("!", "?", "/")):
        return f"starts with markup ({t[i:i + 20]!r})"
    return None


def content_problem(media_type, data):
    """§1.13 "recognised by": None if `data` is recognised as `media_type`, else why not."""
    if media_type == "application/pdf":
        return None if data.startswith(b"%PDF-") else "does not start with %PDF-"
    if media_type == "image/png":
        return None if data.startswith(b"\x89PNG\r\n\x1a\n") else "no PNG signature"
    if media_type == "image/jpeg":
        return None if data.startswith(b"\xff\xd8\xff") else "does not start with FF D8 FF"
    if media_type == "image/webp":
        ok = len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        return None if ok else "not RIFF, 4 bytes, WEBP"
    if media_type in ("text/csv", "text/plain"):
        return utf8_text_problem(data)
    if media_type in ("application/vnd.oasis.opendocument.text",
                      "application/vnd.oasis.opendocument.spreadsheet"):
        # ZIP local file header (APPNOTE 4.3.7): the first entry, stored (method 0), is named
        # `mimetype` and holds the media type.
        if len(data) < 30 or data[:4] != ZIP_LOCAL:
            return "not a ZIP (no local file header at offset 0)"
        method, = struct.unpack("<H", data[8:10])
        csize, = struct.unpack("<I", data[18:22])
        nlen, xlen = struct.unpack("<HH", data[26:30])
        name = data[30:30 + nlen]
        content = data[30 + nlen + xlen:30 + nlen + xlen + csize]
        if name != b"mimetype":
            return f"first ZIP entry is {name!r}, not 'mimetype'"
        if method != 0:
            return f"first ZIP entry `mimetype` is compressed (method {method}), not stored"
        if content != media_type.encode("ascii"):
            return f"`mimetype` holds {content[:80]!r}, not {media_type!r}"
        return None
    return f"no rule for media type {media_type!r}"


def inspect_file(path, media_type):
    """(error, size, blake3 digest, content problem or None); reads the file once."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "not found", None, None, None
    except OSError as e:
        return f"cannot be read: {e}", None, None, None
    if not os.path.isfile(path):
        return "is not a regular file", None, None, None
    h = blake3.blake3()
    keep = st.st_size <= MAX_ATTACHMENT_SIZE      # content check only for a size a record allows
    chunks = []
    size = 0
    try:
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
                size += len(b)
                if keep and size <= MAX_ATTACHMENT_SIZE:
                    chunks.append(b)
                else:
                    keep, chunks = False, []
    except OSError as e:
        return f"cannot be read: {e}", None, None, None
    cp = content_problem(media_type, b"".join(chunks)) if keep else None
    return None, size, h.digest(), cp


def attachment_file_problems(rec, files, cache, warnings):
    """For each attachment of the record: DIR/<hash hex> exists, has `size` bytes and BLAKE3
    `hash`. Failures are returned (the line is bad); a file that matches but whose content is
    not recognised as its media type (§1.13) is a warning: those are the bytes the author signed,
    which a node would discard after fetching them (§4.6.4)."""
    out = []
    pub = rec.body.get("publication") or {}
    for a in pub.get("attachments", []):
        label = f"attachment {json.dumps(a['name'], ensure_ascii=False)}"
        hx = a["hash"].hex()
        path = os.path.join(files, hx)
        key = (path, a["media_type"])
        if key not in cache:
            cache[key] = inspect_file(path, a["media_type"])
        err, size, digest, cp = cache[key]
        if err:
            out.append(f"{label}: file {path} {err}")
            continue
        if size != a["size"]:
            out.append(f"{label}: file {path} is {size} bytes, the record says size {a['size']}")
        if digest != a["hash"]:
            out.append(f"{label}: BLAKE3 of file {path} is {digest.hex()}, the record says hash {hx}")
        elif size == a["size"] and cp:
            warnings.append(f"{label}: file {path} matches its size and hash but is not "
                            f"recognised as {a['media_type']} (§1.13): {cp}")
    return out


def run_export(path, files=None):
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as e:
        print(f"cannot read {path}: {e}", file=sys.stderr)
        return 2
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif data:
        print(f"line {len(lines)}: warning: last line is not \\n-terminated (§8.1)", file=sys.stderr)
    good = bad = newer_lines = 0
    prev_key = None
    cache = {}
    for n, raw in enumerate(lines, 1):
        try:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                print(f"line {n}: not UTF-8: {e}")
                bad += 1
                continue
            if not trimmed(text):
                continue
            reasons, warnings, newer = check_export_line_ex(text, files, cache)
        except Exception as e:  # belt and braces: a line never crashes the checker
            reasons, warnings = [f"internal error while checking: {type(e).__name__}: {e}"], []
            newer = None
        for w in warnings:
            print(f"line {n}: warning: {w}", file=sys.stderr)
        if reasons:
            bad += 1
            print(f"line {n}: " + "; ".join(([f"record newer: {newer}"] if newer else []) + reasons))
        elif newer:
            # §7: not a fault of whoever wrote it, but not checked either (neither good nor bad)
            newer_lines += 1
            print(f"line {n}: newer: {newer}; only its envelope, size and `id` were checked")
        else:
            good += 1
            try:  # §8.1 order (oldest first, by created_at then id): informational only
                o = json.loads(text)
                key = (o["created_at"], o["id"])
                if prev_key is not None and key < prev_key:
                    print(f"line {n}: warning: not in export order (created_at, id) (§8.1)",
                          file=sys.stderr)
                prev_key = key
            except Exception:
                pass
    print(f"{good} good, {bad} bad"
          + (f", {newer_lines} newer (not checked, §7)" if newer_lines else ""))
    return 0 if bad == 0 and newer_lines == 0 else 1


# ---------------------------------------------------------------------------------------------
# Vectors mode (§9)

SEED7, SEED8, SEED9 = b"\x07" * 32, b"\x08" * 32, b"\x09" * 32
PK7_HEX = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
PK8_HEX = "1398f62c6d1a457c51ba6a4b5f3dbd2f69fca93216218dc8997e416bd17d93ca"
PK9_HEX = "fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618"
GOLDEN_TIME = 1_764_000_000_000
GOLDEN_TIME_TEXT = "2025-11-24T16:00:00.000Z"
GOLDEN_ID = "5b7fa915f93a7e5b679f31caeac235025102e201491b9ff1f5a5ffb092a05cf1"

# §9.1 as the document states it.
GOLDEN_PUBLICATION = {
    "kind": "evaluation", "title": "Compteur de vélos : un an de relevés",
    "summary": "Relevés d'un compteur de vélos sur la rue principale.", "language": "fr",
    "town": "Exemple-sur-Mer", "themes": ["mobility"], "tags": ["vélo", "compteur"],
    "sdgs": [11], "period": {"start": "2024", "end": "2025-03"}, "participation": "information",
    "licence": "etalab-2.0", "links": [{"rel": "evaluates", "id": b"\x11" * 32}],
    "method": "metered",
    "indicators": [{"name": "Passages par jour", "unit": "vélos/jour", "value": 412,
                    "baseline": 250, "date": "2025-03-31"},
                   {"name": "Part modale", "unit": "%", "value": 7.5}],
    "body": "## Objet\nUn an de relevés.\n",
}


def _tkey(k):
    b = k.encode()
    return (bytes([0x60 + len(b)]) if len(b) < 24 else bytes([0x78, len(b)])) + b


# §9.1 annotated listing: (record offset, expected bytes, what the document says is there)
GOLDEN_LAYOUT = [
    (0, "82", "array(2)"), (1, "59024f", "bstr(591)"), (4, "a4", "map(4)"),
    (5, "6176", '"v"'), (7, "01", "1"), (8, _tkey("author").hex(), '"author"'),
    (15, "5820" + PK7_HEX, "author key"), (49, _tkey("created_at").hex(), '"created_at"'),
    (60, "1b0000019ab697e800", "created_at 1764000000000"),
    (69, _tkey("publication").hex(), '"publication"'), (81, "af", "map(15)"),
]
for _off, _key in ((82, "kind"), (98, "title"), (144, "summary"), (209, "language"),
                   (221, "town"), (242, "themes"), (259, "tags"), (280, "sdgs"), (287, "period"),
                   (318, "participation"), (344, "licence"), (363, "links"), (422, "method"),
                   (437, "indicators"), (490, "value"), (499, "baseline"), (510, "date"),
                   (551, "value"), (560, "body")):
    GOLDEN_LAYOUT.append((_off, _tkey(_key).hex(), f'key "{_key}"'))
GOLDEN_LAYOUT += [
    (104, "7826", "title tstr(38)"), (390, "11" * 32, "link id"), (449, "a5", "indicator map(5)"),
    (496, "19019c", "value 412"), (508, "18fa", "baseline 250"), (526, "a3", "indicator map(3)"),
    (557, "f94780", "7.5 half precision"), (565, "781c", "body tstr(28)"),
    (595, "5840", "bstr(64)"),
    (597, "90218a4dd5e6fcb1ff5d46601eea1d21ef68a54ad13d50f1332021ba0cf448b7", "R"),
    (629, "8580cb83ba9191c93ea7c8abb9a250979dd93c384947b4465b656158039f190e", "S"),
]

# §9.1 export line, "…" = abbreviated by the document.
GOLDEN_EXPORT_LINE = (
    '{"id":"5b7fa915…5cf1","kind":"evaluation","title":"Compteur de vélos : un an de relevés",'
    '"town":"Exemple-sur-Mer","author":"ea4a6c63…d22c","themes":["mobility"],'
    '"created_at":"2025-11-24T16:00:00.000Z","summary":"Relevés d\'un compteur de vélos sur la rue '
    'principale.","language":"fr","tags":["vélo","compteur"],"sdgs":[11],"period":{"start":"2024",'
    '"end":"2025-03"},"participation":"information","licence":"etalab-2.0","links":[{"rel":'
    '"evaluates","id":"1111…1111"}],"method":"metered","indicators":[{"name":"Passages par jour",'
    '"unit":"vélos/jour","value":412,"baseline":250,"date":"2025-03-31"},{"name":"Part modale",'
    '"unit":"%","value":7.5}],"body":"## Objet\\nUn an de relevés.\\n","status":"current",'
    '"certified":false,"record":"glkCT6Rh…"}')

# §9.2 table
ACT_TABLE = [
    ("e5570786", 172, 103, {"name": "found", "fields": {"name": "Réseau des cailloux"}}),
    ("beb48b9b", 242, 173, {"name": "admit", "fields": {
        "key": bytes.fromhex(PK8_HEX), "town": "Loos-en-Gohelle", "country": "FR",
        "code": "62523", "until": 1_893_455_999_999}}),
    ("0132c4ae", 249, 180, {"name": "delegate", "fields": {
        "key": bytes.fromhex(PK9_HEX), "name": "Jeanne Martin", "role": "chargée de mission",
        "kinds": ["experiment"]}}),
    ("f9fbbd3e", 212, 143, {"name": "revoke", "fields": {
        "key": bytes.fromhex(PK9_HEX), "reason": "a quitté la mairie"}}),
    ("453174ee", 210, 141, {"name": "retract", "fields": {
        "id": b"\x03" * 32, "reason": "chiffres erronés"}}),
]

# §9.3 table
FAR_TABLE = [
    (253_402_300_799_999, "1b0000e677d21fdbff", True),
    (253_402_300_800_000, "1b0000e677d21fdc00", False),
    (18_446_744_073_709_551_615, "1bffffffffffffffff", False),
]


def model_equal(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(model_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(model_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def model_diffs(got, want, path):
    """List of 'path: record has X, expected Y'."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for k in list(want) + [k for k in got if k not in want]:
            if k not in got:
                out.append(f"{path}.{k}: absent in the record, expected {want[k]!r}")
            elif k not in want:
                out.append(f"{path}.{k}: present in the record ({got[k]!r}), expected absent")
            else:
                out += model_diffs(got[k], want[k], f"{path}.{k}")
        return out
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        out = []
        for i, (x, y) in enumerate(zip(got, want)):
            out += model_diffs(x, y, f"{path}[{i}]")
        return out
    if model_equal(got, want):
        return []
    return [f"{path}: record has {got!r}, expected {want!r}"]


def abbrev_match(doc, got):
    """Compare a JSON value from the document, where strings "A…B" abbreviate, with ours."""
    if isinstance(doc, str) and "…" in doc and isinstance(got, str):
        a, _, b = doc.partition("…")
        return got.startswith(a) and got.endswith(b) and len(got) >= len(a) + len(b)
    if isinstance(doc, dict) and isinstance(got, dict):
        return (list(doc) == list(got)) and all(abbrev_match(doc[k], got[k]) for k in doc)
    if isinstance(doc, list) and isinstance(got, list):
        return len(doc) == len(got) and all(abbrev_match(x, y) for x, y in zip(doc, got))
    return json_equal(doc, got)


# --- golden.md: the front matter subset it uses (block keys, flow [..] and {..}, "quoted") -----

def _flow(s, i):
    """Parse a flow value at s[i:]; returns (value, next index). Scalars stay text."""
    while i < len(s) and s[i] == " ":
        i += 1
    if s[i] == "[":
        out, i = [], i + 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == "]":
                return out, i + 1
            v, i = _flow(s, i)
            out.append(v)
            while s[i] == " ":
                i += 1
            if s[i] == ",":
                i += 1
            elif s[i] != "]":
                raise ValueError(f"expected ',' or ']' at column {i + 1} of {s!r}")
    if s[i] == "{":
        out, i = {}, i + 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == "}":
                return out, i + 1
            j = s.index(":", i)
            key = s[i:j].strip()
            v, i = _flow(s, j + 1)
            out[key] = v
            while s[i] == " ":
                i += 1
            if s[i] == ",":
                i += 1
            elif s[i] != "}":
                raise ValueError(f"expected ',' or '}}' at column {i + 1} of {s!r}")
    if s[i] == '"':
        j = i + 1
        while s[j] != '"':
            j += 2 if s[j] == "\\" else 1
        return json.loads(s[i:j + 1]), j + 1
    j = i
    while j < len(s) and s[j] not in ",]}":
        j += 1
    return s[i:j].strip(), j


def parse_golden_md(text):
    """Returns (front matter dict of raw values, {key: line number}, body text)."""
    lines = text.split("\n")
    if lines[0] != "---":
        raise ValueError("golden.md does not start with a '---' line")
    end = lines.index("---", 1)
    fm, where, cur = {}, {}, None
    for n in range(1, end):
        ln = lines[n]
        if not ln.strip():
            continue
        if ln.startswith("  - ") or ln.startswith("- "):
            v, _ = _flow(ln, ln.index("-") + 1)
            fm[cur].append(v)
            continue
        key, _, rest = ln.partition(":")
        cur = key.strip()
        where[cur] = n + 1
        if rest.strip():
            fm[cur], _ = _flow(rest, 0)
        else:
            fm[cur] = []
    body = "\n".join(lines[end + 1:])
    return fm, where, body


def _num(s):
    return int(s) if re.fullmatch(r"-?[0-9]+", s) else float(s)


def golden_md_publication(fm, body):
    """Map golden.md to a publication model the way §9.1/§1.3 imply (see README: gaps)."""
    p = {}
    for k in ("kind", "title", "summary"):
        p[k] = fm[k]
    p["language"] = fm.get("language", "fr")        # §1.3 default applied by the publishing tool
    p["town"] = fm["town"]
    p["themes"] = list(fm["themes"])
    if fm.get("tags"):
        p["tags"] = list(fm["tags"])
    if fm.get("sdgs"):
        p["sdgs"] = [int(x) for x in fm["sdgs"]]
    if "period" in fm:
        p["period"] = {k: fm["period"][k] for k in PERIOD_KEYS if k in fm["period"]}
    if "participation" in fm:
        p["participation"] = fm["participation"]
    p["licence"] = fm.get("licence", "etalab-2.0")  # §1.3 default
    if fm.get("links"):
        p["links"] = [{"rel": l["rel"], "id": bytes.fromhex(l["id"])} for l in fm["links"]]
    for k in ("outcome", "need", "method"):
        if k in fm:
            p[k] = fm[k]
    if fm.get("indicators"):
        inds = []
        for ind in fm["indicators"]:
            o = {"name": ind["name"], "unit": ind["unit"], "value": _num(ind["value"])}
            for k in ("baseline", "target"):
                if k in ind:
                    o[k] = _num(ind[k])
            for k in ("date", "source"):
                if k in ind:
                    o[k] = ind[k]
            inds.append(o)
        p["indicators"] = inds
    p["body"] = body
    return p


class VectorRun:
    def __init__(self, d, quiet):
        self.dir = d
        self.quiet = quiet
        self.passed = 0
        self.failed = 0

    def where(self, name, line):
        return f"{os.path.join(self.dir, name)}:{line}"

    def check(self, name, line, cond, what, why=None):
        if cond:
            self.passed += 1
            if not self.quiet:
                print(f"  ok  {self.where(name, line)}  {what}")
        else:
            self.failed += 1
            print(f"{self.where(name, line)}: {why or what + ': FAILED'}")
        return cond

    def read_lines(self, name):
        path = os.path.join(self.dir, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self.check(name, 0, False, "", f"cannot read: {e}")
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.check(name, 1, False, "", f"not UTF-8: {e}")
            return None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def hexbytes(self, name, line, s, what):
        if not self.check(name, line, re.fullmatch(r"(?:[0-9a-f]{2})+", s) is not None,
                          f"{what} is lowercase hex (§0.1)",
                          f"{what} is not lowercase hex with two digits per byte"):
            return None
        return bytes.fromhex(s)

    def full_record(self, name, line, data, label, expect_valid=True):
        """§1.8 steps 1-7 + canonical form (§1.6) for a vector. Returns the Record (or None)."""
        rec = Record(data)
        try:
            decode_record(data, rec)
            err = None
        except Fail as e:
            err = e
        except Exception as e:
            err = Fail("malformed", f"decoder crashed: {type(e).__name__}: {e}")
        if expect_valid:
            self.check(name, line, err is None,
                       f"{label}: size, envelope (§1.1), body (§1.2-§1.4/§2.1), version, author key, "
                       f"validity rules (§1.5/§2.2), signature (§1.10)",
                       f"{label}: record refused: {err}")
            if rec.body is not None:
                self.check(name, line, not rec.notes, f"{label}: body in canonical form (§1.6)",
                           f"{label}: body not canonical (§1.6): " + "; ".join(rec.notes))
        return rec, err

    def common_signing(self, name, line, rec, label):
        """Signed by seed 0x07 with the domain prefix; bare body does not verify (§1.10, §9)."""
        pk7 = nacl.signing.SigningKey(SEED7).verify_key.encode()
        self.check(name, line, pk7.hex() == PK7_HEX, "public key of seed 0x07×32 is the §9 key",
                   f"public key of seed 0x07×32 is {pk7.hex()}, §9 says {PK7_HEX}")
        if rec.body is None:
            return
        self.check(name, line, rec.body["author"] == pk7, f"{label}: author is the §9 key",
                   f"{label}: author is {rec.body['author'].hex()}, not {PK7_HEX}")
        resign = nacl.signing.SigningKey(SEED7).sign(SIG_PREFIX + rec.body_bytes).signature
        self.check(name, line, resign == rec.sig,
                   f"{label}: signature = Ed25519(seed 0x07, prefix || body) (deterministic)",
                   f"{label}: re-signing prefix || body with seed 0x07 does not give the signature")
        bare = verify_signature(rec.body["author"], rec.body_bytes, rec.sig, prefix=b"")
        self.check(name, line, not bare, f"{label}: signature over the bare body does not verify",
                   f"{label}: signature verifies over the bare body (prefix not mandatory?)")
        self.check(name, line, rec.body["created_at"] == GOLDEN_TIME
                   or name == "far_future.hex",
                   f"{label}: created_at = {GOLDEN_TIME}",
                   f"{label}: created_at = {rec.body['created_at']}, §9 says {GOLDEN_TIME}")

    def golden(self):
        name = "golden.record.hex"
        lines = self.read_lines(name)
        gid_lines = self.read_lines("golden.id")
        if lines is None:
            return None
        if not self.check(name, 1, len(lines) == 1, "one line", f"{len(lines)} lines, expected 1"):
            return None
        data = self.hexbytes(name, 1, lines[0], "golden record")
        if data is None:
            return None
        self.check(name, 1, len(data) == 661, "661 bytes (§9.1)", f"{len(data)} bytes, §9.1 says 661")
        rec, err = self.full_record(name, 1, data, "golden record")
        self.check(name, 1, rec.id_hex == GOLDEN_ID, "id = BLAKE3(record) = the §9.1 id",
                   f"BLAKE3 of the record is {rec.id_hex}, §9.1 says {GOLDEN_ID}")
        if gid_lines is not None:
            ok = len(gid_lines) == 1 and gid_lines[0] == rec.id_hex
            self.check("golden.id", 1, ok, "golden.id = BLAKE3(golden record)",
                       f"golden.id holds {gid_lines[:1]!r}, BLAKE3 of the golden record is {rec.id_hex}")
            self.check("golden.id", 1, len(gid_lines) == 1 and
                       re.fullmatch("[0-9a-f]{64}", gid_lines[0]) is not None,
                       "golden.id is 64 lowercase hex (§1.9)", "golden.id is not 64 lowercase hex")
        for off, hx, what in GOLDEN_LAYOUT:
            exp = bytes.fromhex(hx)
            got = data[off:off + len(exp)]
            self.check(name, 1, got == exp, f"offset {off}: {what} (§9.1 listing)",
                       f"offset {off}: expected {what} = {hx}, found {got.hex()}")
        if rec.body_off is not None:
            self.check(name, 1, rec.body_off == 4 and len(rec.body_bytes) == 591,
                       "body is bytes 4..594", f"body at {rec.body_off}, {len(rec.body_bytes)} bytes")
        if rec.body is None:
            return rec
        self.common_signing(name, 1, rec, "golden record")
        pub = rec.body.get("publication")
        if not self.check(name, 1, pub is not None, "golden record is a publication",
                          "golden record is not a publication"):
            return rec
        d = model_diffs(pub, GOLDEN_PUBLICATION, "publication")
        self.check(name, 1, not d, "decoded publication = §9.1 listing",
                   "decoded publication differs from §9.1: " + "; ".join(d))
        # golden.md
        try:
            with open(os.path.join(self.dir, "golden.md"), encoding="utf-8") as f:
                mdtext = f.read()
                fm, where, mdbody = parse_golden_md(mdtext)
                body_line = mdtext.split("\n").index("---", 1) + 2
            want = golden_md_publication(fm, mdbody)
        except Exception as e:
            self.check("golden.md", 1, False, "", f"cannot parse golden.md front matter: {e}")
        else:
            self.check("golden.md", 1, all(len(l["id"]) == 32 and l["id"] == b"\x11" * 32
                                           for l in want.get("links", [])),
                       "golden.md link id is 32 bytes of 0x11 (§9.1)",
                       "golden.md link id is not 32 bytes of 0x11")
            d = model_diffs(pub, want, "publication")
            self.check(name, 1, not d, "decoded publication = golden.md (+ defaults fr, etalab-2.0)",
                       f"decoded publication differs from golden.md ({len(d)} field(s), below)")
            for m in d:
                field = m.split(".")[1].split("[")[0].split(":")[0]
                line = where.get(field, where.get("---", 1) if field != "body" else body_line)
                self.check("golden.md", line, False, "", f"{m} (golden.md vs {name})")
        # §9.1 export line and §8.2 derivation
        derived = readable_fields(rec)
        derived.update(status="current", certified=False,
                       record=base64.b64encode(data).decode("ascii"))
        doc = json.loads(GOLDEN_EXPORT_LINE)
        self.check(name, 1, abbrev_match(doc, derived),
                   "readable fields (§8.2) = the §9.1 export line (fields and order)",
                   "readable fields differ from the §9.1 export line: " + short(derived, 300))
        self.check(name, 1, rfc3339_ms(GOLDEN_TIME) == GOLDEN_TIME_TEXT,
                   f"created_at renders as {GOLDEN_TIME_TEXT} (§1.11)",
                   f"created_at renders as {rfc3339_ms(GOLDEN_TIME)}")
        line_reasons, _ = check_export_line(json.dumps(derived, ensure_ascii=False))
        self.check(name, 1, not line_reasons, "its export line passes the §8.3 line check",
                   "its export line fails §8.3: " + "; ".join(line_reasons))
        self.wire(name, rec)
        return rec

    def golden_v2(self):
        """golden-v2.record.hex: a format v2 record (§1.13). §9 does not describe this vector, so
        only what every vector shares (§9's preamble: seed 0x07, golden time) and what a v2
        record is are checked: one line of hex; decodes and verifies (§1.8, canonical §1.6);
        id = BLAKE3 (against golden-v2.id if that file exists); v = 2 with attachments; its
        readable fields (§8.2 + attachments) make an export line that passes §8.3."""
        name = "golden-v2.record.hex"
        lines = self.read_lines(name)
        if lines is None:
            return None
        if not self.check(name, 1, len(lines) == 1, "one line", f"{len(lines)} lines, expected 1"):
            return None
        data = self.hexbytes(name, 1, lines[0], "golden v2 record")
        if data is None:
            return None
        label = "golden v2 record"
        rec, err = self.full_record(name, 1, data, label)
        self.check(name, 1, re.fullmatch("[0-9a-f]{64}", rec.id_hex) is not None,
                   f"{label}: id = BLAKE3(record) = {rec.id_hex} (§1.9)",
                   f"{label}: id {rec.id_hex!r} is not 64 lowercase hex")
        if os.path.exists(os.path.join(self.dir, "golden-v2.id")):
            gid = self.read_lines("golden-v2.id")
            if gid is not None:
                self.check("golden-v2.id", 1, len(gid) == 1 and gid[0] == rec.id_hex,
                           "golden-v2.id = BLAKE3(golden v2 record)",
                           f"golden-v2.id holds {gid[:1]!r}, BLAKE3 of the record is {rec.id_hex}")
        if rec.body is None:
            return rec
        self.check(name, 1, rec.body["v"] == 2, f"{label}: v = 2 (§1.2, §1.13)",
                   f"{label}: v = {rec.body['v']}, expected 2")
        if rec.body_off is not None:
            head = data[rec.body_off:rec.body_off + 4]
            self.check(name, 1, head == bytes.fromhex("a4617602"),
                       f"{label}: body starts a4 61 76 02 (map(4), \"v\": 2)",
                       f"{label}: body starts {head.hex()}, expected a4617602")
        self.common_signing(name, 1, rec, label)
        pub = rec.body.get("publication")
        if not self.check(name, 1, pub is not None, f"{label}: a publication",
                          f"{label}: not a publication (only publications have attachments)"):
            return rec
        atts = pub.get("attachments", [])
        self.check(name, 1, len(atts) >= 1,
                   f"{label}: has {len(atts)} attachment(s) (§1.13): "
                   + ", ".join(f"{a['name']} ({a['media_type']}, {a['size']} bytes, "
                               f"hash {a['hash'].hex()[:16]}…)" for a in atts),
                   f"{label}: has no attachments (a v2 record names files, §1.13)")
        derived = readable_fields(rec)
        want = [{"name": a["name"], "title": a["title"], "media_type": a["media_type"],
                 "size": a["size"], "hash": a["hash"].hex()} for a in atts]
        keys = list(derived)
        self.check(name, 1, json_equal(derived.get("attachments"), want)
                   and keys.index("attachments") == keys.index("body") - 1,
                   f"{label}: readable fields show `attachments` (before `body`, hash in hex)",
                   f"{label}: readable fields do not show the attachments: {short(derived, 300)}")
        derived.update(status="current", certified=False,
                       record=base64.b64encode(data).decode("ascii"))
        line_reasons, _ = check_export_line(json.dumps(derived, ensure_ascii=False))
        self.check(name, 1, not line_reasons, f"{label}: its export line passes the §8.3 line check",
                   f"{label}: its export line fails §8.3: " + "; ".join(line_reasons))
        return rec

    def wire(self, name, rec):
        """§9.4 wire messages, computed with cbor2."""
        fr = cbor2.dumps({"ids": [rec.id]})
        self.check(name, 1, fr == bytes.fromhex("a163696473815820") + rec.id and len(fr) == 40,
                   "§9.4 FetchRequest (40 bytes)", f"§9.4 FetchRequest differs: {fr.hex()}")
        fresp = cbor2.dumps({"records": [rec.data]})
        self.check(name, 1, fresp == bytes.fromhex("a1677265636f726473815902" "95") + rec.data,
                   "§9.4 FetchResponse", f"§9.4 FetchResponse differs: {fresp[:16].hex()}…")
        fp = hashlib.sha256(rec.id + b"\x01").digest()[:16]
        self.check(name, 1, fp.hex() == "3480523ae5ac32ac2057328fca9fae7d",
                   "§9.4 fingerprint of {golden} (§5)", f"fingerprint is {fp.hex()}")
        empty = hashlib.sha256(b"\x00" * 32 + b"\x00").digest()[:16]
        self.check(name, 1, empty.hex() == "7f9c9e31ac8256ca2f258583df262dbc",
                   "§9.4 fingerprint of the empty set (§5)", f"empty fingerprint is {empty.hex()}")
        sr = cbor2.dumps({"message": b"\x61\x00\x00\x01" + fp})
        self.check(name, 1, sr == bytes.fromhex("a1676d6573736167655461000001") + fp,
                   "§9.4 first SyncRequest", f"§9.4 SyncRequest differs: {sr.hex()}")
        rp = cbor2.dumps({"Reply": b"\x61"})
        self.check(name, 1, rp == bytes.fromhex("a1655265706c794161"), "§9.4 Reply",
                   f"§9.4 Reply differs: {rp.hex()}")

    def acts(self):
        name = "acts.hex"
        lines = self.read_lines(name)
        if lines is None:
            return
        self.check(name, len(lines), len(lines) == len(ACT_TABLE), f"{len(ACT_TABLE)} lines (§9.2)",
                   f"{len(lines)} lines, §9.2 lists {len(ACT_TABLE)}")
        pk8 = nacl.signing.SigningKey(SEED8).verify_key.encode().hex()
        pk9 = nacl.signing.SigningKey(SEED9).verify_key.encode().hex()
        self.check(name, 1, pk8 == PK8_HEX and pk9 == PK9_HEX,
                   "keys of seeds 0x08×32 and 0x09×32 are those §9.2 names",
                   f"seed 0x08 gives {pk8}, seed 0x09 gives {pk9}")
        self.check(name, 1, rfc3339_ms(1_893_455_999_999) == "2029-12-31T23:59:59.999Z",
                   "until 1893455999999 renders as 2029-12-31T23:59:59.999Z",
                   f"until 1893455999999 renders as {rfc3339_ms(1_893_455_999_999)}")
        prefix = (bytes.fromhex("a46176") + b"\x01" + _tkey("author") + b"\x58\x20"
                  + bytes.fromhex(PK7_HEX) + _tkey("created_at")
                  + bytes.fromhex("1b0000019ab697e800") + _tkey("act") + b"\xa1")
        for n, ln in enumerate(lines, 1):
            try:
                self.one_act(name, n, ln, prefix)
            except Exception as e:
                self.check(name, n, False, "", f"checker error on this line: {type(e).__name__}: {e}")

    def one_act(self, name, n, ln, prefix):
        parts = ln.split(" ")
        if not self.check(name, n, len(parts) == 2, "line is '<id hex> <record hex>'",
                          "line is not '<id hex> <record hex>' (one space)"):
            return
        idb = self.hexbytes(name, n, parts[0], "id")
        data = self.hexbytes(name, n, parts[1], "record")
        if idb is None or data is None:
            return
        label = f"act line {n}"
        rec, err = self.full_record(name, n, data, label)
        self.check(name, n, idb == rec.id, f"{label}: id field = BLAKE3(record)",
                   f"{label}: id field {parts[0]} but BLAKE3(record) is {rec.id_hex}")
        if n > len(ACT_TABLE):
            self.check(name, n, False, "", f"{label}: not in the §9.2 table")
            return
        idp, size, bsize, want = ACT_TABLE[n - 1]
        self.check(name, n, rec.id_hex.startswith(idp), f"{label}: id starts {idp}… (§9.2)",
                   f"{label}: id {rec.id_hex} does not start with {idp} (§9.2)")
        self.check(name, n, len(data) == size, f"{label}: {size} bytes",
                   f"{label}: {len(data)} bytes, §9.2 says {size}")
        env = (data[:2] == b"\x82\x58" and len(data) > 2 and data[2] == bsize
               and data[3 + bsize:5 + bsize] == b"\x58\x40" and len(data) == bsize + 69)
        self.check(name, n, env, f"{label}: envelope 82 58 {bsize:02x} + body({bsize}) + 58 40 + sig",
                   f"{label}: envelope is not 82 58 {bsize:02x} + body({bsize}) + 58 40 + 64 bytes")
        self.check(name, n, data[3:3 + len(prefix)] == prefix,
                   f"{label}: body starts a4 61 76 01 66 \"author\" … 63 \"act\" a1 (§9.2)",
                   f"{label}: body does not start with the §9.2 common prefix")
        if rec.body is None:
            return
        self.common_signing(name, n, rec, label)
        act = rec.body.get("act")
        d = model_diffs(act, want, "act") if act is not None else ["record is not an act"]
        self.check(name, n, not d, f"{label}: decodes as the §9.2 {want['name']} act",
                   f"{label}: act differs from §9.2: " + "; ".join(d))
        if act is not None and act["name"] == "retract":
            rf = readable_fields(rec)
            self.check(name, n, rf.get("target") == "03" * 32 and "id" in rf and rf["id"] == rec.id_hex,
                       f"{label}: readable fields show the target as `target` (§8.2, §9.2)",
                       f"{label}: readable fields do not show `target`: {short(rf, 200)}")

    def far_future(self, golden):
        name = "far_future.hex"
        lines = self.read_lines(name)
        if lines is None:
            return
        self.check(name, len(lines), len(lines) == 3, "3 lines (§9.3)", f"{len(lines)} lines, §9.3 says 3")
        for n, ln in enumerate(lines, 1):
            try:
                self.one_far(name, n, ln, golden)
            except Exception as e:
                self.check(name, n, False, "", f"checker error on this line: {type(e).__name__}: {e}")

    def one_far(self, name, n, ln, golden):
        parts = ln.split(" ")
        if not self.check(name, n, len(parts) == 2 and re.fullmatch("[0-9]+", parts[0]) is not None,
                          "line is '<created_at> <record hex>'",
                          "line is not '<created_at> <record hex>'"):
            return
        ts = int(parts[0])
        data = self.hexbytes(name, n, parts[1], "record")
        if data is None:
            return
        label = f"far_future line {n} (created_at {ts})"
        if n > len(FAR_TABLE):
            self.check(name, n, False, "", f"{label}: not in the §9.3 table")
            return
        want_ts, enc, valid = FAR_TABLE[n - 1]
        self.check(name, n, ts == want_ts, f"{label}: created_at as in §9.3",
                   f"{label}: §9.3 line {n} has created_at {want_ts}")
        self.check(name, n, len(data) == 661, f"{label}: 661 bytes", f"{label}: {len(data)} bytes, not 661")
        self.check(name, n, data[60:69].hex() == enc, f"{label}: encoded {enc} at offset 60",
                   f"{label}: offset 60 holds {data[60:69].hex()}, §9.3 says {enc}")
        if golden is not None and len(data) == 661:
            same = data[:61] == golden.data[:61] and data[69:595] == golden.data[69:595]
            self.check(name, n, same, f"{label}: otherwise the golden publication",
                       f"{label}: body differs from the golden record beyond created_at")
        rec, err = self.full_record(name, n, data, label, expect_valid=valid)
        if rec.body is not None:
            self.check(name, n, rec.body["created_at"] == ts, f"{label}: decoded created_at matches",
                       f"{label}: decoded created_at is {rec.body['created_at']}")
        sig_ok = rec.body is not None and verify_signature(rec.body["author"], rec.body_bytes, rec.sig)
        self.check(name, n, sig_ok, f"{label}: signature valid", f"{label}: signature does not verify")
        if not valid:
            ok = err is not None and err.cls == "invalid" and "created_at" in err.msg
            self.check(name, n, ok, f"{label}: refused as invalid (created_at bound, §1.5/§9.3)",
                       f"{label}: expected refusal 'invalid: created_at after 9999-12-31T23:59:59.999Z', "
                       f"got {err or 'accepted'}")
        else:
            self.check(name, n, rfc3339_ms(ts) == "9999-12-31T23:59:59.999Z",
                       f"{label}: renders as 9999-12-31T23:59:59.999Z",
                       f"{label}: renders as {rfc3339_ms(ts)}")


def run_vectors(d, quiet):
    if not os.path.isdir(d):
        print(f"not a directory: {d}", file=sys.stderr)
        return 2
    run = VectorRun(d, quiet)
    golden = None
    try:
        golden = run.golden()
    except Exception as e:
        run.check("golden.record.hex", 1, False, "", f"checker error: {type(e).__name__}: {e}")
    for step in (run.golden_v2, run.acts, lambda: run.far_future(golden)):
        try:
            step()
        except Exception as e:
            run.check("?", 0, False, "", f"checker error: {type(e).__name__}: {e}")
    print(f"vectors: {run.passed} checks passed, {run.failed} failed")
    return 0 if run.failed == 0 else 1


USAGE = "usage: check.py [-q] vectors DIR | check.py export [--files DIR] FILE|-"


def main(argv):
    for stream in (sys.stdout, sys.stderr):   # a line may carry lone surrogates (\ud800)
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    args = [a for a in argv if a not in ("-q", "--quiet")]
    quiet = len(args) != len(argv)
    files, rest, i = None, [], 0
    while i < len(args):
        a = args[i]
        if a == "--files" or a.startswith("--files="):
            if files is not None:
                print("--files given twice\n" + USAGE, file=sys.stderr)
                return 2
            if a == "--files":
                if i + 1 >= len(args):
                    print("--files needs a directory\n" + USAGE, file=sys.stderr)
                    return 2
                files = args[i + 1]
                i += 2
            else:
                files = a[len("--files="):]
                i += 1
            continue
        rest.append(a)
        i += 1
    args = rest
    if len(args) != 2 or args[0] not in ("vectors", "export"):
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] == "vectors":
        if files is not None:
            print("--files is for export mode\n" + USAGE, file=sys.stderr)
            return 2
        return run_vectors(args[1], quiet)
    if files is not None and not os.path.isdir(files):
        print(f"--files: not a directory: {files}", file=sys.stderr)
        return 2
    return run_export(args[1], files)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
