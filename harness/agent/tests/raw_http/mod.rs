//! Shared by the tests that script a raw HTTP server on a loopback socket: reading one request.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// Reads one request from `stream`: its header lines up to the blank line, then
/// `Content-Length` bytes of body, which it returns.
pub fn read_request(stream: &TcpStream) -> Vec<u8> {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    body
}
