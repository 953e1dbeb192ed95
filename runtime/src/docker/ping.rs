//! The daemon's Engine API version from `GET /_ping`, the way the docker CLI
//! negotiates it: every answer carries an `Api-Version` header, and `/_ping`
//! answers at once. bollard's `negotiate_version` asks `/version` instead,
//! for which the daemon queries containerd and runc first: 5 to 8 ms of every
//! command that talks to Docker, on a quiet machine.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bollard::ClientVersion;

/// The most of an answer read: a ping's is a few hundred bytes.
const MAX_ANSWER: usize = 16 << 10;

/// The API version the daemon at `host` (`unix://…`, `tcp://…`, `http://…`)
/// speaks, within `limit`; `Ok(None)` when it answers without saying (a
/// proxy in front of it, or a daemon older than the header). The error is
/// why nothing usable answered.
pub fn api_version(host: &str, limit: Duration) -> Result<Option<ClientVersion>, String> {
    let deadline = Instant::now() + limit;
    let answer = if let Some(path) = host.strip_prefix("unix://") {
        exchange(
            std::os::unix::net::UnixStream::connect(path),
            limit,
            deadline,
        )?
    } else {
        let address = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .ok_or_else(|| format!("unsupported address {host}"))?
            .trim_end_matches('/');
        let socket = address
            .to_socket_addrs()
            .map_err(|err| err.to_string())?
            .next()
            .ok_or_else(|| format!("{address} names no address"))?;
        exchange(TcpStream::connect_timeout(&socket, limit), limit, deadline)?
    };
    parse(&answer)
}

/// A stream the ping is written to and read from, with time limits.
trait Stream: Read + Write {
    fn limit(&self, left: Duration) -> std::io::Result<()>;
}

impl Stream for std::os::unix::net::UnixStream {
    fn limit(&self, left: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(left))?;
        self.set_write_timeout(Some(left))
    }
}

impl Stream for TcpStream {
    fn limit(&self, left: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(left))?;
        self.set_write_timeout(Some(left))
    }
}

/// Sends the ping on `stream` and reads the answer's head, all by
/// `deadline` (`limit` from the start).
fn exchange(
    stream: std::io::Result<impl Stream>,
    limit: Duration,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let late = || format!("no answer within {}", super::seconds(limit));
    let io = |err: std::io::Error| match err.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => late(),
        _ => err.to_string(),
    };
    let mut stream = stream.map_err(io)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(late)
    };
    stream.limit(left()?).map_err(io)?;
    stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() < MAX_ANSWER {
        stream.limit(left()?).map_err(io)?;
        match stream.read(&mut chunk).map_err(io)? {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(answer)
}

/// The `Api-Version` of a `200` answer's head.
fn parse(answer: &[u8]) -> Result<Option<ClientVersion>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(answer) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("the answer to /_ping ended early".into()),
        Err(err) => return Err(format!("the answer to /_ping is not HTTP: {err}")),
    }
    match response.code {
        Some(200) => {}
        code => {
            return Err(format!(
                "/_ping answered HTTP {}",
                code.map_or_else(|| "?".to_owned(), |c| c.to_string())
            ));
        }
    }
    Ok(response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Api-Version"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|value| {
            let (major, minor) = value.trim().split_once('.')?;
            Some(ClientVersion {
                major_version: major.parse().ok()?,
                minor_version: minor.parse().ok()?,
            })
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(answer: &str) -> Result<Option<(usize, usize)>, String> {
        parse(answer.as_bytes()).map(|v| v.map(|v| (v.major_version, v.minor_version)))
    }

    #[test]
    fn the_header_names_the_version() {
        assert_eq!(
            version("HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n\r\nOK"),
            Ok(Some((1, 41)))
        );
        assert_eq!(
            version("HTTP/1.1 200 OK\r\napi-version:  1.51 \r\n\r\n"),
            Ok(Some((1, 51)))
        );
    }

    #[test]
    fn no_usable_header_is_none_and_a_bad_answer_an_error() {
        assert_eq!(
            version("HTTP/1.1 200 OK\r\nServer: proxy\r\n\r\nOK"),
            Ok(None)
        );
        assert_eq!(
            version("HTTP/1.1 200 OK\r\nApi-Version: one\r\n\r\n"),
            Ok(None)
        );
        assert_eq!(
            version("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            Err("/_ping answered HTTP 503".into())
        );
        assert!(version("HTTP/1.1 200 OK\r\nApi-Ver").is_err());
        assert!(version("SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }
}
