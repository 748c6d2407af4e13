//! TLS for PostgreSQL with rustls, following libpq's `sslmode` meanings:
//! `prefer` and `require` encrypt without authenticating the server; `verify-ca` checks
//! the chain against the root certificates; `verify-full` also checks the host name.
//!
//! The roots are the ones the shard's settings name ([`RootCerts`]): a PEM file
//! (`sslrootcert`, else `~/.postgresql/root.crt`), or with `sslrootcert=system` the
//! operating system's trust store, which libpq allows only with `verify-full`. There is
//! no built-in fallback: public roots with the name unchecked would let anyone holding a
//! publicly issued certificate, for any name, pass `verify-ca`.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::TryFutureExt;
use futures_util::future::MapOk;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::shards::{RootCerts, SslMode, TlsSettings};
use crate::source::coalesce::Coalesce;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process's default rustls provider, once. Two providers are built
/// in (ring, which tributary's own TLS uses, and aws-lc-rs, which Delta Lake's HTTP
/// client brings), and rustls then has no default of its own: the libraries that take
/// the default (sqlx's MySQL TLS, the object stores' HTTP clients) need one installed.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already: that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How much of the socket one read may take under TLS. rustls asks for 4 KiB at a time,
/// which is a system call (and often a wake-up) per 4 KiB of a COPY stream; reading
/// through this buffer takes whatever has arrived, up to this much, at once.
const READ_BUFFER: usize = 128 << 10;

/// rustls over a buffered socket, its plaintext read through [`Coalesce`].
#[derive(Clone)]
pub struct Connector(MakeRustlsConnect);

impl<S> MakeTlsConnect<S> for Connector
where
    MakeRustlsConnect: MakeTlsConnect<BufReader<S>>,
    <MakeRustlsConnect as MakeTlsConnect<BufReader<S>>>::Stream: Unpin,
    S: AsyncRead + AsyncWrite,
{
    type Stream = Coalesce<<MakeRustlsConnect as MakeTlsConnect<BufReader<S>>>::Stream>;
    type TlsConnect = Buffered<<MakeRustlsConnect as MakeTlsConnect<BufReader<S>>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<BufReader<S>>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        MakeTlsConnect::<BufReader<S>>::make_tls_connect(&mut self.0, domain).map(Buffered)
    }
}

/// A TLS handshake over the socket wrapped in a read buffer.
pub struct Buffered<T>(T);

impl<S, T> TlsConnect<S> for Buffered<T>
where
    S: AsyncRead,
    T: TlsConnect<BufReader<S>>,
    T::Stream: Unpin,
{
    type Stream = Coalesce<T::Stream>;
    type Error = T::Error;
    type Future = MapOk<T::Future, fn(T::Stream) -> Coalesce<T::Stream>>;

    fn connect(self, stream: S) -> Self::Future {
        self.0
            .connect(BufReader::with_capacity(READ_BUFFER, stream))
            .map_ok(Coalesce::new as fn(T::Stream) -> Coalesce<T::Stream>)
    }
}

/// Why a shard's TLS settings cannot be put to use. Nothing here holds a password: the
/// settings carry none.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot set up TLS")]
    Setup(#[source] rustls::Error),

    /// `verify-ca`/`verify-full` settings built without roots. Parsing a shard URL never
    /// makes these (it refuses the mode without a root certificate file, as libpq does).
    #[error("sslmode={mode} needs root certificates to verify the server against")]
    NoRoots { mode: &'static str },

    #[error("cannot read root certificate file \"{}\"", path.display())]
    ReadRoots {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },

    #[error("invalid certificate in root certificate file \"{}\"", path.display())]
    BadRoot {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },

    #[error("root certificate file \"{}\" holds no certificate", path.display())]
    EmptyRoots { path: PathBuf },

    /// `sslrootcert=system` found no usable certificate (`source` is the first reason the
    /// store gave, if it gave one).
    #[error("sslrootcert=system: no trusted root certificate found in the system's store")]
    SystemRoots {
        #[source]
        source: Option<rustls_native_certs::Error>,
    },

    #[error("cannot use the root certificates")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
}

/// Builds the connector for a shard's TLS settings.
pub fn connector(settings: &TlsSettings) -> Result<Connector, TlsError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Lenient {
            chain: None,
            algorithms,
        }),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = settings.roots.as_ref().ok_or(TlsError::NoRoots {
                mode: settings.mode.as_str(),
            })?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(roots)?), provider)
                    .build()
                    .map_err(TlsError::Verifier)?;
            // The system's roots vouch for public names, not for one organisation's
            // servers: libpq uses them only with the host name checked, and so do we.
            if settings.mode == SslMode::VerifyFull || *roots == RootCerts::System {
                webpki
            } else {
                Arc::new(Lenient {
                    chain: Some(webpki),
                    algorithms,
                })
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Connector(MakeRustlsConnect::new(config)))
}

/// The trusted roots `roots` names. The system's store is read once per shard, when its
/// pool is built (a few milliseconds for a distribution's bundle).
fn root_store(roots: &RootCerts) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let read = |source| TlsError::ReadRoots {
                path: path.clone(),
                source,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(read)? {
                store
                    .add(cert.map_err(read)?)
                    .map_err(|source| TlsError::BadRoot {
                        path: path.clone(),
                        source,
                    })?;
            }
            if store.is_empty() {
                return Err(TlsError::EmptyRoots { path: path.clone() });
            }
        }
        RootCerts::System => {
            // SSL_CERT_FILE and SSL_CERT_DIR, when set, replace the platform's store, as
            // they do for OpenSSL (and so for libpq).
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!("sslrootcert=system: {error}");
            }
            let (added, _unparsable) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::SystemRoots {
                    source: found.errors.into_iter().next(),
                });
            }
        }
    }
    Ok(store)
}

/// The server check for the modes a plain [`WebPkiServerVerifier`] does not make:
/// `prefer`/`require` accept any certificate (the channel is encrypted, the server not
/// authenticated); `verify-ca` checks the chain and not the host name. Handshake
/// signatures are checked either way, so the session keys belong to whoever holds the
/// presented certificate.
#[derive(Debug)]
struct Lenient {
    /// `None` accepts any certificate; `Some` requires a chain to one of its roots.
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name only once the chain has been verified, so a name
        // mismatch means the chain is good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(mode: SslMode, roots: Option<RootCerts>) -> TlsError {
        match connector(&TlsSettings { mode, roots }) {
            Ok(_) => panic!("{mode:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn verifying_modes_need_roots_that_hold_certificates() {
        // Never the public roots in their place.
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let err = refused(mode, None);
            assert!(matches!(err, TlsError::NoRoots { .. }), "{err:?}");
        }
        assert!(
            connector(&TlsSettings {
                mode: SslMode::Require,
                roots: None
            })
            .is_ok()
        );

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = refused(SslMode::VerifyCa, Some(RootCerts::File(empty.clone())));
        assert!(
            matches!(&err, TlsError::EmptyRoots { path } if *path == empty),
            "{err:?}"
        );

        let missing = dir.path().join("missing.pem");
        let err = refused(SslMode::VerifyFull, Some(RootCerts::File(missing.clone())));
        assert!(
            matches!(&err, TlsError::ReadRoots { path, .. } if *path == missing),
            "{err:?}"
        );
        // The cause travels as the error's source.
        let message = crate::error::chain(&err);
        assert!(
            message.starts_with(&format!(
                "cannot read root certificate file \"{}\": ",
                missing.display()
            )) && std::error::Error::source(&err).is_some(),
            "{message}"
        );
    }
}
