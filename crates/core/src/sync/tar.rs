//! Just enough of the tar format for busybox `tar -x`: GNU-flavoured ustar headers, with
//! `././@LongLink` records for names and link targets over 100 bytes, written by us so
//! that a batch's exact size is known before its first byte is sent (the receiver reads
//! exactly that many bytes) and file contents can be streamed.

use super::path::RelPath;
use super::tree::{Entry, Kind};

pub const BLOCK: u64 = 512;
/// Permission bits a synced file keeps: setuid and setgid (0o6000) are never copied
/// into a pod, where they could hand a process the file owner's rights.
pub const MODE_BITS: u32 = 0o1777;
/// Two zero blocks end an archive.
pub const END: [u8; 1024] = [0; 1024];

fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

fn name_of(path: &RelPath, kind: Kind) -> String {
    match kind {
        Kind::Dir => format!("{path}/"),
        _ => path.to_string(),
    }
}

/// The bytes `append` writes for `entry`, content included.
pub fn entry_size(path: &RelPath, entry: &Entry) -> u64 {
    let mut size = BLOCK;
    let name = name_of(path, entry.kind);
    if name.len() > 100 {
        size += BLOCK + padded(name.len() as u64 + 1);
    }
    if let Some(t) = &entry.target {
        if t.len() > 100 {
            size += BLOCK + padded(t.len() as u64 + 1);
        }
    }
    if entry.kind == Kind::File {
        size += padded(entry.size);
    }
    size
}

/// The padding after `size` bytes of content.
pub fn padding(size: u64) -> usize {
    (padded(size) - size) as usize
}

/// Appends the header(s) of `entry`; for a file, exactly `entry.size` bytes of content
/// and `padding(entry.size)` zeros must follow.
pub fn append_header(out: &mut Vec<u8>, path: &RelPath, entry: &Entry) {
    let name = name_of(path, entry.kind);
    if name.len() > 100 {
        long_link(out, b'L', name.as_bytes());
    }
    let target = entry.target.as_deref().unwrap_or("");
    if target.len() > 100 {
        long_link(out, b'K', target.as_bytes());
    }
    let (flag, size) = match entry.kind {
        Kind::File => (b'0', entry.size),
        Kind::Dir => (b'5', 0),
        Kind::Symlink => (b'2', 0),
    };
    header(
        out,
        name.as_bytes(),
        entry.mode,
        size,
        entry.mtime,
        flag,
        target.as_bytes(),
    );
}

fn long_link(out: &mut Vec<u8>, flag: u8, data: &[u8]) {
    let len = data.len() as u64 + 1;
    header(out, b"././@LongLink", 0o644, len, 0, flag, b"");
    out.extend_from_slice(data);
    out.resize(out.len() + 1 + padding(len), 0);
}

fn header(out: &mut Vec<u8>, name: &[u8], mode: u32, size: u64, mtime: i64, flag: u8, link: &[u8]) {
    let mut h = [0u8; 512];
    let cut = |s: &[u8], n: usize| s[..s.len().min(n)].to_vec();
    h[..name.len().min(100)].copy_from_slice(&cut(name, 100));
    octal(&mut h[100..108], u64::from(mode & MODE_BITS));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size < 0o77777777777 {
        octal(&mut h[124..136], size);
    } else {
        // Base-256 for files of 8 GiB and more.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut h[136..148], mtime.clamp(0, 0o77777777777) as u64);
    h[156] = flag;
    h[157..157 + link.len().min(100)].copy_from_slice(&cut(link, 100));
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(digits.as_bytes());
    out.extend_from_slice(&h);
}

/// Zero-padded octal filling the field but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> Entry {
        Entry {
            kind: Kind::File,
            mode: 0o755,
            size,
            mtime: 1_700_000_000,
            ctime: 0,
            md5: None,
            target: None,
        }
    }

    #[test]
    fn sizes_match_what_is_written() {
        let long = RelPath::new(&format!("d/{}", "x".repeat(150))).unwrap();
        let short = RelPath::new("a.txt").unwrap();
        let link = Entry {
            kind: Kind::Symlink,
            mode: 0o777,
            size: 0,
            mtime: 0,
            ctime: 0,
            md5: None,
            target: Some("t".repeat(200)),
        };
        for (path, entry) in [(&short, file(3)), (&long, file(1024)), (&long, link)] {
            let mut out = Vec::new();
            append_header(&mut out, path, &entry);
            let content = if entry.kind == Kind::File {
                entry.size as usize + padding(entry.size)
            } else {
                0
            };
            assert_eq!((out.len() + content) as u64, entry_size(path, &entry));
        }
    }

    #[test]
    fn header_checksum_and_fields() {
        let mut out = Vec::new();
        append_header(&mut out, &RelPath::new("a.txt").unwrap(), &file(3));
        assert_eq!(out.len(), 512);
        assert_eq!(&out[..5], b"a.txt");
        assert_eq!(&out[100..108], b"0000755\0");
        assert_eq!(&out[124..136], b"00000000003\0");
        let stored = std::str::from_utf8(&out[148..154]).unwrap();
        let mut h = out.clone();
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
    }

    #[test]
    fn setuid_and_setgid_are_never_written() {
        let mut out = Vec::new();
        let mut entry = file(0);
        entry.mode = 0o6755;
        append_header(&mut out, &RelPath::new("su").unwrap(), &entry);
        assert_eq!(&out[100..108], b"0000755\0");
        // The sticky bit (on a dir) is harmless and kept.
        let mut out = Vec::new();
        entry.kind = Kind::Dir;
        entry.mode = 0o3777;
        append_header(&mut out, &RelPath::new("tmp").unwrap(), &entry);
        assert_eq!(&out[100..108], b"0001777\0");
    }
}
