//! Our own TCP/TLS dialer: the stream tonic's channel runs on.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::TlsNote;

/// A plain or TLS TCP stream.
pub(super) enum Stream {
    Plain(TcpStream),
    /// The stream, the error note, and server bytes read ahead during the dial (not yet consumed).
    Tls(Box<TlsStream<TcpStream>>, TlsNote, Vec<u8>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s, n, ahead) => {
                if !ahead.is_empty() {
                    let k = ahead.len().min(buf.remaining());
                    buf.put_slice(&ahead[..k]);
                    ahead.drain(..k);
                    return Poll::Ready(Ok(()));
                }
                n.record(Pin::new(s.as_mut()).poll_read(cx, buf))
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s, n, _) => n.record(Pin::new(s.as_mut()).poll_write(cx, buf)),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s, n, _) => n.record(Pin::new(s.as_mut()).poll_flush(cx)),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s, _, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s, n, _) => n.record(Pin::new(s.as_mut()).poll_write_vectored(cx, bufs)),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s, _, _) => s.is_write_vectored(),
        }
    }
}

/// Dials TCP (and TLS) to one endpoint.
pub(super) async fn dial(
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    note: TlsNote,
    first_bytes_wait: Duration,
) -> io::Result<TokioIo<Stream>> {
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(TokioIo::new(Stream::Plain(tcp)));
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stream = TlsConnector::from(config).connect(name, tcp).await?;
    // With TLS 1.3 the server checks our client certificate after our side of the handshake has
    // finished, and its alert races with our first write (which then fails with a bare broken
    // pipe). gRPC servers speak first (HTTP/2 SETTINGS), so wait briefly for their first bytes:
    // an alert then surfaces here, as a TLS error at dial time; the bytes are replayed to HTTP/2.
    let mut ahead = vec![0u8; 16 * 1024];
    let ahead = match tokio::time::timeout(first_bytes_wait, stream.read(&mut ahead)).await {
        Ok(Ok(0)) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection right after the TLS handshake",
            ));
        }
        Ok(Ok(n)) => {
            ahead.truncate(n);
            ahead
        }
        Ok(Err(e)) => return Err(e),
        // A silent server: carry on, HTTP/2 will tell.
        Err(_) => Vec::new(),
    };
    Ok(TokioIo::new(Stream::Tls(Box::new(stream), note, ahead)))
}
