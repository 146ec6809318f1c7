//! The receiver: a POSIX sh script run once per pod as `sh -c SCRIPT devenv-sync TARGET`
//! on a long-lived exec stream, with only busybox tools (sh, dd, tar, find, stat,
//! md5sum, sed, rm, mkdir).
//!
//! Protocol (client -> receiver, on stdin; paths are lines, validated as [`RelPath`]):
//!
//! ```text
//! B <id> <ndeletes> <nchecks> <bytes>   a batch, then:
//!   <ndeletes> paths    removed (rm -rf) first
//!   <nchecks> dirs      every directory a tar entry goes into or is
//!   <bytes> bytes       a tar archive (none when 0), extracted into the target
//! L <id> <0|1>          list the target (with MD5s when 1)
//! H <id> <n>            the MD5s of these <n> files (paths follow, a line each)
//! P <id>                ping
//! ```
//!
//! Replies (stdout): `R <resolved target>` once at start, `A <id>` when a request is done,
//! `E <id> <message>` when a batch was refused or failed, listing lines (`S`, `N`, `M`)
//! before a listing's (or checksum request's) `A`. `S` lines carry the mode, size,
//! mtime and ctime: the ctime says when the receiver wrote the file, which tells the
//! quick check whether the mtime can be trusted (see `session.rs`). Requests are handled in order, so batches can be pipelined.
//!
//! Confinement, the part that must hold whatever the container holds: every checked
//! directory and the parent of every delete is walked component by component from the
//! resolved target; a component that is a symlink (or not a directory) refuses the
//! whole batch before anything is deleted or extracted. `tar` itself replaces a symlink
//! in the last component (it unlinks, then creates with O_EXCL) instead of writing
//! through it, and strips `..`. Stdin is read with `read` (a byte at a time, so never
//! past a line) and `dd iflag=count_bytes,fullblock` (exactly N bytes; busybox
//! `head -c` reads ahead and would eat the next request), and a refused batch's bytes
//! are still consumed so the stream stays in step.

/// The script; `$1` is the target directory.
pub const SCRIPT: &str = r#"set -f
T=$1
NL='
'
mkdir -p -- "$T" || exit 1
R=$(cd -- "$T" && pwd -P) || exit 1
echo "R $R"
# Refuses (sets err) if a component of $1 below $R is a symlink or not a directory.
check() {
  case "/$1/" in //|*//*|*/./*|*/../*) err="unsafe path: $1"; return 1;; esac
  _p=$R; _rest=$1
  while [ -n "$_rest" ]; do
    _c=${_rest%%/*}
    if [ "$_c" = "$_rest" ]; then _rest=; else _rest=${_rest#*/}; fi
    _p=$_p/$_c
    if [ -L "$_p" ]; then err="refusing to write through symlink $_p"; return 1; fi
    [ -e "$_p" ] || return 0
    if [ ! -d "$_p" ]; then err="not a directory: $_p"; return 1; fi
  done
}
drain() {
  [ "$1" -gt 0 ] && dd bs=65536 count="$1" iflag=count_bytes,fullblock of=/dev/null 2>/dev/null
}
while IFS= read -r line; do
  set -- $line
  case $1 in
  B)
    id=$2; ndel=$3; nchk=$4; size=$5; err=
    set --
    i=0
    while [ "$i" -lt "$ndel" ]; do
      IFS= read -r p || exit 1
      i=$((i+1))
      [ -n "$err" ] && continue
      case "/$p/" in //|*//*|*/./*|*/../*) err="unsafe path: $p"; continue;; esac
      case $p in */*) check "${p%/*}" || continue;; esac
      set -- "$@" "$R/$p"
    done
    if [ -z "$err" ] && [ "$#" -gt 0 ]; then
      out=$(rm -rf -- "$@" 2>&1) || err="rm: $out"
    fi
    i=0
    while [ "$i" -lt "$nchk" ]; do
      IFS= read -r p || exit 1
      i=$((i+1))
      [ -z "$err" ] && check "$p"
    done
    if [ -n "$err" ]; then
      drain "$size"
    elif [ "$size" -gt 0 ]; then
      out=$(dd bs=65536 count="$size" iflag=count_bytes,fullblock 2>/dev/null |
        { tar -x -o -f - -C "$R" 2>&1; rc=$?; cat >/dev/null; exit $rc; }) || err="tar: $out"
    fi
    # One line, of bounded length, whatever rm or tar said.
    if [ -z "$err" ]; then echo "A $id"; else printf 'E %s %.2000s\n' "$id" "$(printf '%s ' $err)"; fi
    ;;
  L)
    (
      cd -- "$R" || exit 1
      find . -mindepth 1 -name "*$NL*" -prune -o -exec stat -c 'S %f %s %Y %Z %n' {} +
      find . -mindepth 1 -name "*$NL*" -prune -o -type l -exec stat -c 'N %N' {} +
      if [ "$3" = 1 ]; then
        find . -mindepth 1 -name "*$NL*" -prune -o -type f -exec md5sum {} + | sed 's/^/M /'
      fi
    )
    echo "A $2"
    ;;
  H)
    id=$2; n=$3; i=0
    set --
    while [ "$i" -lt "$n" ]; do
      IFS= read -r p || exit 1
      i=$((i+1))
      case "/$p/" in //|*//*|*/./*|*/../*) continue;; esac
      set -- "$@" "./$p"
      if [ "$#" -ge 256 ]; then
        (cd -- "$R" && md5sum -- "$@" 2>/dev/null) | sed 's/^/M /'
        set --
      fi
    done
    [ "$#" -gt 0 ] && (cd -- "$R" && md5sum -- "$@" 2>/dev/null) | sed 's/^/M /'
    echo "A $id"
    ;;
  P) echo "A $2" ;;
  Q) exit 0 ;;
  *) echo "E 0 unknown request"; exit 1 ;;
  esac
done
"#;

/// A reply line from the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ready(String),
    Ack(u64),
    Error(u64, String),
    /// A line of a listing.
    Listing(String),
    /// A listing line naming a path that is not UTF-8 (or too long to keep whole): its
    /// bytes, as far as kept. Such a path is left alone, never deleted.
    Opaque(Vec<u8>),
}

impl Reply {
    /// Parses a line as read from the stream (without its newline). Pure and total:
    /// any bytes give a reply or `None` (not a reply: a protocol error).
    pub fn parse_bytes(line: &[u8]) -> Option<Reply> {
        if let Ok(line) = std::str::from_utf8(line) {
            return Reply::parse(line);
        }
        match line.get(..2)? {
            b"S " | b"N " | b"M " => Some(Reply::Opaque(line.to_vec())),
            // rm's or tar's words about a name that is not UTF-8.
            b"E " => Reply::parse(&String::from_utf8_lossy(line)),
            _ => None,
        }
    }

    /// Parses a UTF-8 line.
    pub fn parse(line: &str) -> Option<Reply> {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "R" => Some(Reply::Ready(rest.to_owned())),
            "A" => rest.parse().ok().map(Reply::Ack),
            "E" => {
                let (id, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Reply::Error(id.parse().ok()?, msg.to_owned()))
            }
            "S" | "N" | "M" => Some(Reply::Listing(line.to_owned())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        assert_eq!(Reply::parse("R /app"), Some(Reply::Ready("/app".into())));
        assert_eq!(Reply::parse("A 12"), Some(Reply::Ack(12)));
        assert_eq!(
            Reply::parse("E 3 refusing to write through symlink /app/evil"),
            Some(Reply::Error(
                3,
                "refusing to write through symlink /app/evil".into()
            ))
        );
        assert!(matches!(
            Reply::parse("S 81a4 1 2 ./x"),
            Some(Reply::Listing(_))
        ));
        assert_eq!(Reply::parse("A x"), None);
        assert_eq!(Reply::parse("hello"), None);
    }

    #[test]
    fn names_that_are_not_utf8_are_opaque() {
        let line = b"S 81a4 1 2 3 ./caf\xe9";
        assert_eq!(Reply::parse_bytes(line), Some(Reply::Opaque(line.to_vec())));
        assert_eq!(
            Reply::parse_bytes(b"E 4 rm: can't remove '\xff'"),
            Some(Reply::Error(4, "rm: can't remove '\u{fffd}'".into()))
        );
        assert_eq!(Reply::parse_bytes(b"A \xff"), None);
        assert_eq!(Reply::parse_bytes(b"\xff\xfe"), None);
        assert_eq!(Reply::parse_bytes(b""), None);
        assert_eq!(Reply::parse_bytes(b"A 7"), Some(Reply::Ack(7)));
        let (replies, entries, bad, pinned) = crate::sync::parse_receiver_bytes(
            b"R /app\nS 41ed 1 2 3 ./d\nS 81a4 1 2 3 ./d/caf\xe9\nS 81a4 1 2 3 ./ok\nA 1\n\xff\n",
        );
        assert_eq!((replies, entries, bad, pinned), (2, 2, 0, 1));
    }

    /// The script runs under the host's sh too (dash or bash): a quick check of the
    /// confinement logic without a cluster, when the host has busybox-compatible tools.
    #[test]
    fn script_is_valid_sh() {
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
