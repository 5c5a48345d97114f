//! The manifest: what the last successful pass left on the target, kept on the target itself (one file,
//! [`FILE_NAME`] at the volume root, excluded from every sync and from Verify) so the next pass can
//! tell what changed on the source without walking the target (docs/mover.md, "Delta passes").
//!
//! Format (version [`VERSION`]), all integers unsigned LEB128 unless said otherwise:
//!
//! ```text
//!  "FERRYMF\n"  version  key-length key  pass-id(16 bytes)  entry-count  sha256(32 bytes)  body
//!  body = entries in scan order (children sorted by name bytes, depth first), each:
//!         shared-prefix-length  suffix-length suffix  kind(1 byte)  mode uid gid size
//!         mtime-secs mtime-nsecs ctime-secs ctime-nsecs inode links rdev  [target-length target]
//! ```
//!
//! Paths are raw bytes (any name a Linux filesystem allows, newlines and invalid UTF-8 included),
//! prefix-compressed against the previous entry: sorted paths share most of their bytes, so an entry
//! costs about 35 bytes. The checksum covers everything before it and the body; the key (which volume
//! pair the manifest belongs to) and the version are checked before the body is trusted.

use sha2::{Digest, Sha256};

/// The manifest's name at the target volume's root (reserved: a source entry of that name is not synced).
pub(crate) const FILE_NAME: &str = ".ferry-manifest";
/// The format this build writes and reads; any other is "of another format" (a full pass follows).
pub(crate) const VERSION: u64 = 1;
const MAGIC: &[u8; 8] = b"FERRYMF\n";

/// What a manifest entry is; the mode's type bits decide, so a file replaced by a fifo also differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    /// A device, fifo or socket (the mode and rdev tell them apart).
    Special,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Dir => b'd',
            Kind::Symlink => b'l',
            Kind::Special => b's',
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            b'f' => Kind::File,
            b'd' => Kind::Dir,
            b'l' => Kind::Symlink,
            b's' => Kind::Special,
            _ => return None,
        })
    }
}

/// One entry: everything a sync sets or that tells a change (ctime and inode catch an edit that kept
/// size and mtime, and a rename over the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path relative to the root, raw bytes, `/`-separated; empty for the root itself.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub inode: u64,
    pub links: u64,
    pub rdev: u64,
    /// A symlink's target.
    pub target: Vec<u8>,
    /// A regular file with fewer blocks than its size needs (holes): only then does a sync ask rsync for
    /// `--sparse`. Not stored: it only matters for the current scan.
    pub sparse: bool,
}

/// A manifest read back and found trustworthy in form (the caller decides whether it is current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The pass that wrote it (random; logged, so a manifest can be traced to its pass).
    pub pass_id: [u8; 16],
    /// Entries in scan order.
    pub entries: Vec<Entry>,
}

/// Why a manifest file cannot be used; each becomes the reason of a full pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Written by another format version.
    Format(u64),
    /// Written for another volume pair (another key).
    OtherVolume,
    /// Truncated, not a manifest, or its body does not match its checksum.
    Corrupt(&'static str),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Format(version) => write!(f, "manifest of format {version}, expected {VERSION}"),
            Unusable::OtherVolume => f.write_str("manifest of another volume"),
            Unusable::Corrupt(what) => write!(f, "corrupt manifest ({what})"),
        }
    }
}

/// Encodes `entries` (in scan order) as a manifest for `key`.
pub(crate) fn encode(key: &str, pass_id: [u8; 16], entries: &[Entry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * 40);
    let mut previous: &[u8] = &[];
    for entry in entries {
        let shared = previous
            .iter()
            .zip(&entry.path)
            .take_while(|(a, b)| a == b)
            .count();
        put(&mut body, shared as u64);
        put_bytes(&mut body, &entry.path[shared..]);
        body.push(entry.kind.code());
        for value in [
            u64::from(entry.mode),
            u64::from(entry.uid),
            u64::from(entry.gid),
            entry.size,
        ] {
            put(&mut body, value);
        }
        for (secs, nsecs) in [entry.mtime, entry.ctime] {
            put(&mut body, zigzag(secs));
            put(&mut body, u64::from(nsecs));
        }
        for value in [entry.inode, entry.links, entry.rdev] {
            put(&mut body, value);
        }
        if entry.kind == Kind::Symlink {
            put_bytes(&mut body, &entry.target);
        }
        previous = &entry.path;
    }
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(MAGIC);
    put(&mut out, VERSION);
    put_bytes(&mut out, key.as_bytes());
    out.extend_from_slice(&pass_id);
    put(&mut out, entries.len() as u64);
    let digest = Sha256::new().chain_update(&out).chain_update(&body).finalize();
    out.extend_from_slice(&digest);
    out.extend_from_slice(&body);
    out
}

/// Decodes a manifest, checking magic, version, key and checksum before it reads a single entry.
pub(crate) fn decode(bytes: &[u8], key: &str) -> Result<Manifest, Unusable> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.take(MAGIC.len()).ok_or(Unusable::Corrupt("too short"))? != MAGIC {
        return Err(Unusable::Corrupt("not a manifest"));
    }
    let version = reader.varint()?;
    if version != VERSION {
        return Err(Unusable::Format(version));
    }
    if reader.bytes_field()? != key.as_bytes() {
        return Err(Unusable::OtherVolume);
    }
    let mut pass_id = [0u8; 16];
    pass_id.copy_from_slice(reader.take(16).ok_or(Unusable::Corrupt("truncated header"))?);
    let count = reader.varint()?;
    let header = &bytes[..reader.at];
    let digest = reader.take(32).ok_or(Unusable::Corrupt("truncated header"))?;
    let body = &bytes[reader.at..];
    if Sha256::new()
        .chain_update(header)
        .chain_update(body)
        .finalize()
        .as_slice()
        != digest
    {
        return Err(Unusable::Corrupt("checksum mismatch"));
    }
    // Each entry takes at least 17 bytes: a count larger than that is a lie, not an allocation.
    if count > body.len() as u64 / 17 + 1 {
        return Err(Unusable::Corrupt("entry count"));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(count as usize);
    let mut body = Reader { bytes: body, at: 0 };
    for _ in 0..count {
        let shared = body.varint()? as usize;
        let previous = entries.last().map_or(&[][..], |entry| &entry.path[..]);
        if shared > previous.len() {
            return Err(Unusable::Corrupt("path prefix"));
        }
        let mut path = previous[..shared].to_vec();
        path.extend_from_slice(body.bytes_field()?);
        // Paths become rsync arguments (deletions among them): only plain relative ones.
        let plain = path
            .split(|byte| *byte == b'/')
            .all(|part| !matches!(part, b"" | b"." | b".."));
        let root = path.is_empty() && entries.is_empty();
        if !(plain || root) || path.contains(&0) {
            return Err(Unusable::Corrupt("path"));
        }
        let kind = Kind::from_code(body.take(1).ok_or(Unusable::Corrupt("truncated entry"))?[0])
            .ok_or(Unusable::Corrupt("entry kind"))?;
        let small = |value: u64| u32::try_from(value).map_err(|_| Unusable::Corrupt("field range"));
        let mode = small(body.varint()?)?;
        let uid = small(body.varint()?)?;
        let gid = small(body.varint()?)?;
        let size = body.varint()?;
        let mtime = (unzigzag(body.varint()?), small(body.varint()?)?);
        let ctime = (unzigzag(body.varint()?), small(body.varint()?)?);
        let (inode, links, rdev) = (body.varint()?, body.varint()?, body.varint()?);
        let target = if kind == Kind::Symlink {
            body.bytes_field()?.to_vec()
        } else {
            Vec::new()
        };
        entries.push(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            size,
            mtime,
            ctime,
            inode,
            links,
            rdev,
            target,
            sparse: false,
        });
    }
    if body.at != body.bytes.len() {
        return Err(Unusable::Corrupt("trailing bytes"));
    }
    Ok(Manifest { pass_id, entries })
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn varint(&mut self) -> Result<u64, Unusable> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1).ok_or(Unusable::Corrupt("truncated number"))?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Unusable::Corrupt("number too long"))
    }

    fn bytes_field(&mut self) -> Result<&'a [u8], Unusable> {
        let len = usize::try_from(self.varint()?).map_err(|_| Unusable::Corrupt("length"))?;
        self.take(len).ok_or(Unusable::Corrupt("truncated field"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(path: &[u8], kind: Kind) -> Entry {
        Entry {
            path: path.to_vec(),
            kind,
            mode: if kind == Kind::Dir { 0o40755 } else { 0o100644 },
            uid: 0,
            gid: 0,
            size: 5,
            mtime: (1_700_000_000, 123_456_789),
            ctime: (1_700_000_000, 123_456_789),
            inode: 42,
            links: 1,
            rdev: 0,
            target: Vec::new(),
            sparse: false,
        }
    }

    fn sample() -> Vec<Entry> {
        let mut link = entry(b"a/link", Kind::Symlink);
        link.target = b"../b\nc\xff".to_vec();
        let mut old = entry(b"a/new\nline\xfe", Kind::File);
        old.mtime = (-5, 999_999_999);
        old.uid = u32::MAX;
        old.size = u64::MAX;
        vec![
            entry(b"", Kind::Dir),
            entry(b"a", Kind::Dir),
            link,
            old,
            entry(b"b", Kind::Special),
        ]
    }

    #[test]
    fn entries_survive_a_round_trip_with_odd_names_and_extremes() {
        let bytes = encode("vol-1", [7; 16], &sample());
        let manifest = decode(&bytes, "vol-1").unwrap();
        assert_eq!(manifest.pass_id, [7; 16]);
        assert_eq!(manifest.entries, sample());
    }

    #[test]
    fn another_key_version_or_any_flipped_byte_is_refused() {
        let bytes = encode("vol-1", [7; 16], &sample());
        assert_eq!(decode(&bytes, "vol-2"), Err(Unusable::OtherVolume));
        let mut other_version = bytes.clone();
        other_version[8] = 9;
        assert_eq!(decode(&other_version, "vol-1"), Err(Unusable::Format(9)));
        for at in 0..bytes.len() {
            if at == 8 {
                continue;
            }
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            assert!(
                decode(&flipped, "vol-1").is_err(),
                "a flip at byte {at} went unnoticed"
            );
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], "vol-1").is_err(), "truncated to {len}");
        }
        assert!(decode(b"", "vol-1").is_err());
    }

    #[test]
    fn paths_that_could_leave_the_volume_are_refused_even_with_a_valid_checksum() {
        let bad: [&[u8]; 7] = [
            b"../etc",
            b"a/../../b",
            b"/abs",
            b"a//b",
            b"./a",
            b"a/",
            &[b'a', 0, b'b'],
        ];
        for path in bad {
            let entries = vec![entry(b"", Kind::Dir), entry(path, Kind::File)];
            assert_eq!(
                decode(&encode("k", [0; 16], &entries), "k"),
                Err(Unusable::Corrupt("path")),
                "{path:?}"
            );
        }
        let second_root = vec![entry(b"", Kind::Dir), entry(b"", Kind::Dir)];
        assert!(decode(&encode("k", [0; 16], &second_root), "k").is_err());
    }
}
