//! How the service reaches PostgreSQL: `DATABASE_URL` parsed once into a [`DbTarget`] that
//! opens every connection (pool, writers, migrations), with TLS over rustls.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` only, and no `sslrootcert`; libpq's
//! TLS options are taken out of the URL here and given libpq's meaning:
//!
//! | `sslmode`            | TLS                      | server certificate checked          |
//! |----------------------|--------------------------|-------------------------------------|
//! | `disable`            | never                    | —                                   |
//! | `allow`, `prefer` (default) | if the server offers it | no                           |
//! | `require`            | always                   | chain only if `sslrootcert` is given |
//! | `verify-ca`          | always                   | chain                               |
//! | `verify-full`        | always                   | chain and host name                 |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the operating system's
//! store (also the default for `verify-ca`/`verify-full` without it).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use diesel::ConnectionResult;
use diesel::result::ConnectionError;
use diesel_async::AsyncPgConnection;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where and how to connect; cheap to clone. `Debug` and [`DbTarget::shown`] hide the password.
#[derive(Clone)]
pub struct DbTarget {
    config: tokio_postgres::Config,
    /// `None`: `sslmode=disable`.
    tls: Option<MakeRustlsConnect>,
    shown: String,
}

/// What `sslmode` asks for (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl DbTarget {
    /// Parses a `postgres://` URL. The error says what is wrong without the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = super::redact(url);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = Mode::Prefer;
        let mut root_cert = None;
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{key} in {shown} is not valid UTF-8"))?;
            match key {
                "sslmode" => {
                    mode = match value.as_ref() {
                        "disable" => Mode::Disable,
                        "allow" | "prefer" => Mode::Prefer,
                        "require" => Mode::Require,
                        "verify-ca" => Mode::VerifyCa,
                        "verify-full" => Mode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(value.into_owned()),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                    return Err(format!(
                        "{key} is not supported (client certificates and CRLs); use a password or SCRAM"
                    ));
                }
                _ => passed.push(pair),
            }
        }
        let rest = if passed.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| format!("{shown} is not a valid PostgreSQL URL: {e}"))?;
        let tls = match mode {
            Mode::Disable => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            Mode::Prefer => {
                config.ssl_mode(SslMode::Prefer);
                Some(rustls_config(Verify::Nothing)?)
            }
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => {
                config.ssl_mode(SslMode::Require);
                let roots = match (&root_cert, mode) {
                    (None, Mode::Require) => None,
                    (Some(path), _) => Some(load_roots(path)?),
                    (None, _) => Some(load_roots("system")?),
                };
                let verify = match (roots, mode) {
                    (None, _) => Verify::Nothing,
                    (Some(roots), Mode::VerifyFull) => Verify::Full(roots),
                    (Some(roots), _) => Verify::Chain(roots),
                };
                Some(rustls_config(verify)?)
            }
        };
        Ok(Self { config, tls, shown })
    }

    /// Sets tokio-postgres' connect timeout, unless the URL has its own `connect_timeout`.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        if self.config.get_connect_timeout().is_none() {
            self.config.connect_timeout(timeout);
        }
        self
    }

    /// The URL with its password hidden, for logs and errors.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The role this target logs in as.
    pub fn user(&self) -> Option<&str> {
        self.config.get_user()
    }

    /// Opens a connection; its driver task runs on the current tokio runtime.
    pub async fn connect(&self) -> ConnectionResult<AsyncPgConnection> {
        // The cause is in the error's sources ("error performing TLS handshake" alone does
        // not say that the certificate's issuer is unknown).
        let failed = |e: tokio_postgres::Error| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            ConnectionError::BadConnection(text)
        };
        match &self.tls {
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await.map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, conn).await
            }
            None => {
                let (client, conn) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, conn).await
            }
        }
    }
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTarget")
            .field("url", &self.shown)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

enum Verify {
    Nothing,
    Chain(RootCertStore),
    Full(RootCertStore),
}

fn rustls_config(verify: Verify) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let webpki = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("sslrootcert holds no usable CA certificate: {e}"))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Full(roots) => webpki(roots)?,
        Verify::Chain(roots) => Arc::new(Lenient {
            chain: Some(webpki(roots)?),
            provider,
        }),
        Verify::Nothing => Arc::new(Lenient {
            chain: None,
            provider,
        }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn load_roots(source: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if source == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("sslrootcert=system: the system's CA store is empty or unreadable".into());
        }
        return Ok(roots);
    }
    let certs = CertificateDer::pem_file_iter(source)
        .map_err(|e| format!("sslrootcert={source}: cannot read it: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert={source}: not a PEM certificate file: {e}"))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("sslrootcert={source}: no CA certificate in it"));
    }
    Ok(roots)
}

/// libpq's weaker modes, one verifier: `chain` is `verify-ca` (and `require` with
/// `sslrootcert`): the chain must lead to a trusted CA, the name is not checked; without it
/// (`prefer`, `require` without a CA) nothing is checked — encrypted but not authenticated,
/// as libpq does (the README's Security section says so). Signatures are always checked.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_options_are_understood_and_the_rest_passed_on() {
        let t =
            DbTarget::parse("postgres://app:pw@db:5432/orders?sslmode=disable&application_name=x")
                .expect("valid");
        assert!(t.tls.is_none());
        assert_eq!(t.user(), Some("app"));
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert!(
            DbTarget::parse("postgres://db/orders")
                .expect("valid")
                .tls
                .is_some(),
            "prefer by default"
        );
        assert!(
            DbTarget::parse("postgres://db/o?sslmode=require")
                .expect("valid")
                .tls
                .is_some()
        );
    }

    #[test]
    fn a_bad_tls_option_is_named() {
        let err = DbTarget::parse("postgres://db/o?sslmode=sometimes").expect_err("bad mode");
        assert!(err.contains("sslmode"), "{err}");
        let err =
            DbTarget::parse("postgres://db/o?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .expect_err("no file");
        assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
        let err = DbTarget::parse("postgres://db/o?sslcert=/x").expect_err("client cert");
        assert!(err.contains("sslcert"), "{err}");
    }

    #[test]
    fn the_password_never_shows() {
        let t = DbTarget::parse("postgres://app:s3cret@db/orders").expect("valid");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!t.shown().contains("s3cret"));
        let err =
            DbTarget::parse("postgres://app:s3cret@db:notaport/orders").expect_err("bad port");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_url_connect_timeout_wins() {
        let t = DbTarget::parse("postgres://db/o?connect_timeout=3")
            .expect("valid")
            .with_connect_timeout(Duration::from_secs(10));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        let t = DbTarget::parse("postgres://db/o")
            .expect("valid")
            .with_connect_timeout(Duration::from_secs(10));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
    }
}
