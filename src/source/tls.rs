//! TLS for PostgreSQL with rustls, following libpq's `sslmode` meanings:
//! `prefer` and `require` encrypt without authenticating the server (as libpq does);
//! `verify-ca` checks the chain against the root certificate; `verify-full` also checks
//! the host name. Roots come from `sslrootcert`, else `~/.postgresql/root.crt`, else the
//! Mozilla roots.

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

use crate::config::shards::{SslMode, TlsSettings};
use crate::source::coalesce::Coalesce;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

/// Builds the connector for a shard's TLS settings.
pub fn connector(settings: &TlsSettings) -> Result<Connector, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match settings.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(settings.root_cert.as_ref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("cannot use the root certificates: {e}"))?;
            let verifier: Arc<dyn ServerCertVerifier> = if settings.mode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(Connector(MakeRustlsConnect::new(config)))
}

fn roots(explicit: Option<&PathBuf>) -> Result<RootCertStore, String> {
    let default = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"));
    let path = match explicit {
        Some(p) => Some(p.clone()),
        None => default.filter(|p| p.exists()),
    };
    let Some(path) = path else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("invalid certificate in {}: {e}", path.display()))?;
        store
            .add(cert)
            .map_err(|e| format!("invalid certificate in {}: {e}", path.display()))?;
    }
    if store.is_empty() {
        return Err(format!(
            "sslrootcert {} holds no certificate",
            path.display()
        ));
    }
    Ok(store)
}

/// `sslmode=prefer|require`: the channel is encrypted, the server is not authenticated.
/// Handshake signatures are still checked, so the session keys belong to whoever holds
/// the presented certificate.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
