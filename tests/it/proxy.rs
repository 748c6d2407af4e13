//! A small TCP proxy between tributary and PostgreSQL that injects network faults:
//! latency, a stall that keeps the connection open but forwards nothing more, a cut (clean
//! close) or a reset after some bytes from the server, or a black hole that accepts and
//! never answers. Each accepted connection asks the policy for its fault, so a test can
//! fail the first attempt and let the retry through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Delay every chunk from the server.
    Delay(Duration),
    /// After this many bytes from the server, forward nothing more, close nothing.
    StallAfter(usize),
    /// After this many bytes from the server, close both sides.
    CutAfter(usize),
    /// After this many bytes from the server, reset the client's connection.
    ResetAfter(usize),
    /// Accept, never connect upstream, never answer.
    BlackHole,
    /// The first connection through which this many bytes go up is closed then, both
    /// sides; every other passes (for uploads whose connections are pooled).
    CutFirstUploadAfter(usize),
}

pub struct Proxy {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    /// Uploads cut (`CutFirstUploadAfter` reached).
    cut: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Proxies to the test PostgreSQL with `fault` on the first connection only: a
    /// task's first attempt meets it, its retry goes through.
    pub async fn failing_first(fault: Fault) -> Proxy {
        Proxy::start(move |n| if n == 0 { fault } else { Fault::Pass }).await
    }

    /// Proxies to the test PostgreSQL; `policy` gives the fault of the n-th connection.
    pub async fn start(policy: impl Fn(usize) -> Fault + Send + Sync + 'static) -> Proxy {
        Proxy::start_to(5432, policy).await
    }

    /// Proxies to the server on local port `upstream` (the test MariaDB's 3306, say).
    pub async fn start_to(
        upstream: u16,
        policy: impl Fn(usize) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let cut = Arc::new(AtomicUsize::new(0));
        let cuts = cut.clone();
        let policy = Arc::new(policy);
        let task = tokio::spawn(async move {
            let mut open = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let fault = policy(n);
                open.spawn(serve(client, fault, upstream, cuts.clone()));
            }
        });
        Proxy {
            port,
            accepted,
            cut,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Uploads cut so far (0 or 1: `CutFirstUploadAfter` cuts one connection).
    pub fn cuts(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }

    /// A shard URL for `db` through the proxy (plaintext, so faults hit the protocol).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

async fn serve(mut client: TcpStream, fault: Fault, upstream: u16, cuts: Arc<AtomicUsize>) {
    if fault == Fault::BlackHole {
        let mut sink = [0u8; 1024];
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
        return;
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    if matches!(fault, Fault::ResetAfter(_)) {
        // A zero linger makes the close a reset; it cannot block.
        #[allow(deprecated)]
        let _ = client.set_linger(Some(Duration::ZERO));
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    if let Fault::CutFirstUploadAfter(limit) = fault {
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
        });
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0usize;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut n = n;
            let cut = sent < limit
                && sent + n >= limit
                && cuts
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
            if cut {
                n = limit - sent;
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n;
            if cut {
                down.abort();
                return;
            }
        }
        let _ = uw.shutdown().await;
        let _ = down.await;
        return;
    }
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
        let _ = uw.shutdown().await;
    });
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match ur.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let limit = match fault {
            Fault::StallAfter(b) | Fault::CutAfter(b) | Fault::ResetAfter(b) => Some(b),
            _ => None,
        };
        if let Fault::Delay(d) = fault {
            tokio::time::sleep(d).await;
        }
        match limit {
            Some(limit) if sent + n >= limit => {
                let _ = cw.write_all(&buf[..limit - sent]).await;
                if let Fault::StallAfter(_) = fault {
                    // Hold both connections open, forward nothing.
                    std::future::pending::<()>().await;
                }
                // Closing both halves closes (or, with zero linger, resets) the client.
                up.abort();
                let _ = up.await;
                drop(cw);
                return;
            }
            _ => {
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                sent += n;
            }
        }
    }
    up.abort();
}
