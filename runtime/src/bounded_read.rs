//! Reading a file that someone else named or placed (`--facts`, `policy
//! check`, the config, a component to install or load): only a regular file,
//! never more than its kind's cap, and checked from its first bytes.
//!
//! `/dev/zero`, a FIFO with no writer or a file that grows while it is read
//! must neither hang a command nor fill its memory. So the path's metadata is
//! checked before it is opened (opening a device can have side effects), the
//! file is opened without blocking (a FIFO swapped in meanwhile opens at
//! once), the open handle is checked again, and the read stops one byte past
//! the cap whatever the metadata said.

use crate::home::HomePath;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A kind of input file: its cap, and what messages call it.
#[derive(Debug, Clone, Copy)]
pub struct InputFile {
    /// What the file is: "a facts file".
    pub noun: &'static str,
    /// What it must be, completing "{noun} must be …": "a JSON file of
    /// hardware facts (see docs/facts.md)".
    pub expected: &'static str,
    pub max_bytes: u64,
    /// Checks the first bytes (a magic number) before the rest is read.
    pub header: Option<Header>,
}

/// A policy file (system, user, `policy check FILE`): a few KiB even with
/// every provider's table.
pub const POLICY_FILE: InputFile = InputFile {
    noun: "a policy file",
    expected: "a TOML file (see docs/policy.md)",
    max_bytes: 4 << 20,
    header: None,
};

/// A check of a file's first `len` bytes (fewer when the file is shorter).
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub len: usize,
    /// `Err` says what the bytes are instead.
    pub check: fn(&[u8]) -> Result<(), String>,
}

/// Why a file was not read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub kind: InputFile,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    NotFound,
    /// It exists but is not a regular file: "a FIFO (named pipe)".
    NotRegular(&'static str),
    /// Larger than the cap: the size when the metadata told it, `None` when
    /// the file grew past the cap while it was read.
    TooLarge(Option<u64>),
    /// The first bytes are not what this kind of file starts with.
    Header(String),
    /// Not UTF-8 text; the offset of the first bad byte.
    NotText(usize),
    Io(std::io::Error),
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self.problem, Problem::NotFound)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let cap = human_cap(self.kind.max_bytes);
        match &self.problem {
            Problem::NotFound => write!(f, "{path} does not exist")?,
            Problem::NotRegular(what) => write!(f, "{path} is {what}, not a regular file")?,
            Problem::TooLarge(Some(size)) => {
                write!(f, "{path} is {size} bytes, more than the {cap} limit")?
            }
            Problem::TooLarge(None) => {
                write!(f, "{path} grew past the {cap} limit while it was read")?
            }
            Problem::Header(what) => write!(f, "{path}: {what}")?,
            Problem::NotText(offset) => write!(f, "{path} is not UTF-8 text (byte {offset})")?,
            Problem::Io(err) => write!(f, "cannot read {path}: {err}")?,
        }
        write!(
            f,
            "; {} must be {}, at most {cap}",
            self.kind.noun, self.kind.expected
        )
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Io(err) => Some(err),
            _ => None,
        }
    }
}

/// The file's bytes, after its header check.
pub fn read_bytes(path: &Path, kind: &InputFile) -> Result<Vec<u8>, ReadError> {
    read_opened(path, kind, open_regular(path))
}

/// [`read_bytes`] of a file under the home, reached through its directory
/// handle (see `home.rs`).
pub fn read_home_bytes(path: &HomePath, kind: &InputFile) -> Result<Vec<u8>, ReadError> {
    read_opened(&path.absolute(), kind, open_regular_in_home(path))
}

fn read_opened(
    path: &Path,
    kind: &InputFile,
    opened: Result<(File, u64), Problem>,
) -> Result<Vec<u8>, ReadError> {
    let error = |problem| ReadError {
        path: path.to_owned(),
        kind: *kind,
        problem,
    };
    let (file, size) = opened.map_err(error)?;
    if size > kind.max_bytes {
        return Err(error(Problem::TooLarge(Some(size))));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // One byte past the cap tells "too large" from "exactly the cap".
    let mut capped = file.take(kind.max_bytes + 1);
    if let Some(header) = &kind.header {
        (&mut capped)
            .take(header.len as u64)
            .read_to_end(&mut bytes)
            .map_err(|err| error(Problem::Io(err)))?;
        (header.check)(&bytes).map_err(|what| error(Problem::Header(what)))?;
    }
    capped
        .read_to_end(&mut bytes)
        .map_err(|err| error(Problem::Io(err)))?;
    if bytes.len() as u64 > kind.max_bytes {
        return Err(error(Problem::TooLarge(None)));
    }
    Ok(bytes)
}

/// The file as UTF-8 text.
pub fn read_text(path: &Path, kind: &InputFile) -> Result<String, ReadError> {
    as_text(path, kind, read_bytes(path, kind)?)
}

/// [`read_text`] of a file under the home.
pub fn read_home_text(path: &HomePath, kind: &InputFile) -> Result<String, ReadError> {
    as_text(&path.absolute(), kind, read_home_bytes(path, kind)?)
}

fn as_text(path: &Path, kind: &InputFile, bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|err| ReadError {
        path: path.to_owned(),
        kind: *kind,
        problem: Problem::NotText(err.utf8_error().valid_up_to()),
    })
}

/// Opens `path` if it is a regular file (following symlinks), and its size.
fn open_regular(path: &Path) -> Result<(File, u64), Problem> {
    regular(std::fs::metadata(path).map_err(io)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    checked_again(file)
}

/// Opens a regular file under the home for reading, without blocking on a
/// FIFO planted there (for readers that seek, such as log tails).
pub fn open_home_regular(path: &HomePath) -> std::io::Result<File> {
    match open_regular_in_home(path) {
        Ok((file, _)) => Ok(file),
        Err(Problem::NotFound) => Err(std::io::ErrorKind::NotFound.into()),
        Err(Problem::Io(err)) => Err(err),
        Err(Problem::NotRegular(what)) => Err(std::io::Error::other(format!(
            "{path} is {what}, not a regular file"
        ))),
        Err(_) => Err(std::io::Error::other(format!("cannot open {path}"))),
    }
}

/// [`open_regular`] through the home's directory handle.
fn open_regular_in_home(path: &HomePath) -> Result<(File, u64), Problem> {
    use cap_std::fs::OpenOptionsExt;
    regular(path.metadata().map_err(io)?.file_type())?;
    let mut options = cap_std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    checked_again(path.open_with(&options).map_err(io)?)
}

/// The path may have been replaced between the check and the open.
fn checked_again(file: File) -> Result<(File, u64), Problem> {
    let metadata = file.metadata().map_err(io)?;
    regular(metadata.file_type())?;
    Ok((file, metadata.len()))
}

fn io(err: std::io::Error) -> Problem {
    match err.kind() {
        std::io::ErrorKind::NotFound => Problem::NotFound,
        _ => Problem::Io(err),
    }
}

/// A file type as std and cap-std both describe it.
trait Kind {
    fn is_file(&self) -> bool;
    fn is_dir(&self) -> bool;
    fn is_fifo(&self) -> bool;
    fn is_socket(&self) -> bool;
    fn is_char_device(&self) -> bool;
    fn is_block_device(&self) -> bool;
}

macro_rules! kind {
    ($type:ty, $ext:path) => {
        impl Kind for $type {
            fn is_file(&self) -> bool {
                <$type>::is_file(self)
            }
            fn is_dir(&self) -> bool {
                <$type>::is_dir(self)
            }
            fn is_fifo(&self) -> bool {
                <$type as $ext>::is_fifo(self)
            }
            fn is_socket(&self) -> bool {
                <$type as $ext>::is_socket(self)
            }
            fn is_char_device(&self) -> bool {
                <$type as $ext>::is_char_device(self)
            }
            fn is_block_device(&self) -> bool {
                <$type as $ext>::is_block_device(self)
            }
        }
    };
}

kind!(std::fs::FileType, std::os::unix::fs::FileTypeExt);
kind!(cap_std::fs::FileType, cap_std::fs::FileTypeExt);

fn regular(kind: impl Kind) -> Result<(), Problem> {
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a file"
    };
    Err(Problem::NotRegular(what))
}

/// `4 MiB`, `256 MiB`, or bytes when the cap is not whole MiB.
fn human_cap(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: InputFile = InputFile {
        noun: "a test file",
        expected: "a small text file",
        max_bytes: 16,
        header: None,
    };

    fn starts_with_ok(head: &[u8]) -> Result<(), String> {
        if head.starts_with(b"ok") {
            Ok(())
        } else {
            Err(format!("starts with {head:?}, not \"ok\""))
        }
    }

    const CHECKED: InputFile = InputFile {
        header: Some(Header {
            len: 2,
            check: starts_with_ok,
        }),
        ..TEXT
    };

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn reads_a_regular_file_up_to_the_cap() {
        let exact = file(&[b'x'; 16]);
        assert_eq!(read_text(exact.path(), &TEXT).unwrap(), "x".repeat(16));
        let over = file(&[b'x'; 17]);
        let err = read_text(over.path(), &TEXT).unwrap_err();
        assert!(matches!(err.problem, Problem::TooLarge(Some(17))), "{err}");
        assert!(
            err.to_string().contains("more than the 16 bytes limit"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("a test file must be a small text file")
        );
    }

    #[test]
    fn the_cap_holds_when_the_metadata_says_less() {
        // Like a file that grows while it is read: /proc files report size 0.
        let status = Path::new("/proc/self/status");
        assert_eq!(std::fs::metadata(status).unwrap().len(), 0);
        let err = read_bytes(status, &TEXT).unwrap_err();
        assert!(matches!(err.problem, Problem::TooLarge(None)), "{err}");
        assert!(
            err.to_string().contains("grew past the 16 bytes limit"),
            "{err}"
        );
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bytes(dir.path(), &TEXT).unwrap_err();
        assert!(matches!(err.problem, Problem::NotRegular("a directory")));
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read_bytes(&fifo, &TEXT).unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::NotRegular("a FIFO (named pipe)")
        ));
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = read_bytes(&socket, &TEXT).unwrap_err();
        assert!(matches!(err.problem, Problem::NotRegular("a socket")));
        let err = read_bytes(&dir.path().join("missing"), &TEXT).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("missing does not exist"), "{err}");
    }

    #[test]
    fn the_header_is_checked_before_the_rest_is_read() {
        assert_eq!(
            read_bytes(file(b"ok then").path(), &CHECKED).unwrap(),
            b"ok then"
        );
        let err = read_bytes(file(b"no").path(), &CHECKED).unwrap_err();
        assert!(matches!(err.problem, Problem::Header(_)), "{err}");
        // A short file gets the bytes it has.
        let err = read_bytes(file(b"o").path(), &CHECKED).unwrap_err();
        assert!(err.to_string().contains("[111]"), "{err}");
    }

    #[test]
    fn text_must_be_utf8() {
        let err = read_text(file(b"ab\xffcd").path(), &TEXT).unwrap_err();
        assert!(matches!(err.problem, Problem::NotText(2)), "{err}");
    }
}
