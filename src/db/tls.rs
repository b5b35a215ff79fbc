//! libpq's server-certificate check, on rustls: what `sslmode` and `sslrootcert` mean to
//! `psql` is what they mean here.
//!
//! - The certificate is trusted when it leads to a certificate of `sslrootcert` (webpki's
//!   chain building), or when it *is* one of them, byte for byte, and is within its validity
//!   dates: PostgreSQL's documentation sets up TLS with one self-signed certificate
//!   (`openssl req -new -x509 -nodes -subj "/CN=host"`) given both as the server's
//!   certificate and as the client's `sslrootcert`. OpenSSL accepts that (the chain is the
//!   root itself); webpki refuses a CA certificate as the server's (`CaUsedAsEndEntity`), so
//!   the exact match is checked here. Such a certificate must still be fit for a TLS server
//!   (OpenSSL's purpose check: extended key usage, if present, allows `serverAuth`; key
//!   usage, if present, allows a handshake signature or key exchange).
//! - `verify-full` also checks the name the way libpq does: against the certificate's
//!   subjectAltName DNS and IP entries when it has any (webpki's matching, wildcards
//!   included), otherwise against its subject's common name (case-insensitive, a leading
//!   `*.` matching one label).
//! - The handshake's signature is always checked against the certificate's key, so the
//!   server holds the private key of the certificate it shows.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;
use x509_cert::Certificate;
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName};

/// What the server's certificate is checked against.
pub(super) enum Verify {
    /// Encrypted, not authenticated (`prefer`, `require` without `sslrootcert`).
    Nothing,
    /// Trusted certificate, any name (`verify-ca`, `require` with `sslrootcert`).
    Trusted(Roots),
    /// Trusted certificate for the host name (`verify-full`).
    TrustedForName(Roots),
}

/// The trusted certificates: a PEM file's, or the operating system's store.
pub(super) struct Roots {
    store: RootCertStore,
    /// The file's certificates, each trusted as a server certificate too (see the module
    /// doc); empty for the system store, where only chains count.
    exact: Vec<CertificateDer<'static>>,
}

impl Roots {
    /// `sslrootcert`: a PEM file of certificates, or `system`.
    pub(super) fn load(source: &str) -> Result<Self, String> {
        let mut store = RootCertStore::empty();
        if source == "system" {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslrootcert=system: the system's CA store is empty or unreadable".into(),
                );
            }
            return Ok(Self {
                store,
                exact: Vec::new(),
            });
        }
        let certs = CertificateDer::pem_file_iter(source)
            .map_err(|e| format!("sslrootcert={source}: cannot read it: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("sslrootcert={source}: not a PEM certificate file: {e}"))?;
        let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err(format!("sslrootcert={source}: no certificate in it"));
        }
        Ok(Self {
            store,
            exact: certs,
        })
    }
}

/// The TLS connector for `verify`.
pub(super) fn connector(verify: Verify) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let (roots, check_name) = match verify {
        Verify::Nothing => (None, false),
        Verify::Trusted(roots) => (Some(roots), false),
        Verify::TrustedForName(roots) => (Some(roots), true),
    };
    let trust = match roots {
        None => None,
        Some(Roots { store, exact }) => Some(Trust {
            chain: WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert holds no usable certificate: {e}"))?,
            exact,
        }),
    };
    let verifier = Arc::new(LibpqVerifier {
        trust,
        check_name,
        provider,
    });
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[derive(Debug)]
struct Trust {
    chain: Arc<WebPkiServerVerifier>,
    exact: Vec<CertificateDer<'static>>,
}

#[derive(Debug)]
struct LibpqVerifier {
    /// `None`: the certificate is not checked (signatures still are).
    trust: Option<Trust>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(trust) = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        let exact = trust
            .exact
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref());
        if exact {
            let cert = parse(end_entity)?;
            within_validity(&cert, now)?;
            fit_for_a_server(&cert)?;
        } else {
            match trust.chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                // The name is checked below, libpq's way, when `verify-full` asks for it.
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        if self.check_name {
            valid_for_name(end_entity, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
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

fn bad(error: CertificateError) -> rustls::Error {
    rustls::Error::InvalidCertificate(error)
}

fn parse(der: &CertificateDer<'_>) -> Result<Certificate, rustls::Error> {
    Certificate::from_der(der.as_ref()).map_err(|_| bad(CertificateError::BadEncoding))
}

fn within_validity(cert: &Certificate, now: UnixTime) -> Result<(), rustls::Error> {
    let validity = &cert.tbs_certificate.validity;
    let now = now.as_secs();
    if now < validity.not_before.to_unix_duration().as_secs() {
        return Err(bad(CertificateError::NotValidYet));
    }
    if now > validity.not_after.to_unix_duration().as_secs() {
        return Err(bad(CertificateError::Expired));
    }
    Ok(())
}

/// The extension of type `T`, if the certificate has one.
fn extension<T: AssociatedOid + for<'a> Decode<'a>>(
    cert: &Certificate,
) -> Result<Option<T>, rustls::Error> {
    let Some(extensions) = &cert.tbs_certificate.extensions else {
        return Ok(None);
    };
    match extensions.iter().find(|e| e.extn_id == T::OID) {
        None => Ok(None),
        Some(e) => T::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|_| bad(CertificateError::BadEncoding)),
    }
}

/// OpenSSL's purpose check for a TLS server certificate.
fn fit_for_a_server(cert: &Certificate) -> Result<(), rustls::Error> {
    use x509_cert::der::oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_SERVER_AUTH};
    if let Some(ExtendedKeyUsage(purposes)) = extension::<ExtendedKeyUsage>(cert)?
        && !purposes
            .iter()
            .any(|p| *p == ID_KP_SERVER_AUTH || *p == ANY_EXTENDED_KEY_USAGE)
    {
        return Err(bad(CertificateError::InvalidPurpose));
    }
    if let Some(KeyUsage(usage)) = extension::<KeyUsage>(cert)?
        && !usage.contains(KeyUsages::DigitalSignature)
        && !usage.contains(KeyUsages::KeyEncipherment)
        && !usage.contains(KeyUsages::KeyAgreement)
    {
        return Err(bad(CertificateError::InvalidPurpose));
    }
    Ok(())
}

/// libpq's host name check (`verify-full`).
fn valid_for_name(
    end_entity: &CertificateDer<'_>,
    name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let cert = parse(end_entity)?;
    let has_alt_names = extension::<SubjectAltName>(&cert)?.is_some_and(|SubjectAltName(names)| {
        names
            .iter()
            .any(|n| matches!(n, GeneralName::DnsName(_) | GeneralName::IpAddress(_)))
    });
    if has_alt_names {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        return rustls::client::verify_server_name(&parsed, name);
    }
    let host = match name {
        ServerName::DnsName(dns) => dns.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    };
    let common_name = common_name(&cert);
    if common_name
        .as_deref()
        .is_some_and(|cn| name_matches(cn, &host))
    {
        return Ok(());
    }
    Err(bad(CertificateError::NotValidForNameContext {
        expected: name.to_owned(),
        presented: common_name
            .map(|cn| format!("CN={cn}"))
            .into_iter()
            .collect(),
    }))
}

/// The subject's first common name.
fn common_name(cert: &Certificate) -> Option<String> {
    const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    let value = &cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|attribute| attribute.oid == COMMON_NAME)?
        .value;
    let value = DirectoryString::from_der(&value.to_der().ok()?).ok()?;
    Some(match value {
        DirectoryString::PrintableString(s) => s.as_str().to_string(),
        DirectoryString::TeletexString(s) => s.as_str().to_string(),
        DirectoryString::Utf8String(s) => s,
    })
}

/// libpq's comparison of a certificate name with the host: equal ignoring ASCII case, or
/// `*.rest` where the host is one label (not empty, no dot) followed by `.rest`.
fn name_matches(pattern: &str, host: &str) -> bool {
    if pattern.contains('\0') {
        return false;
    }
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    if !suffix.starts_with('.') || suffix.len() < 2 || host.len() <= suffix.len() {
        return false;
    }
    let (label, rest) = host.split_at(host.len() - suffix.len());
    rest.eq_ignore_ascii_case(suffix) && !label.contains('.')
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn a_common_name_matches_like_libpq() {
        assert!(name_matches("db.example.com", "DB.Example.com"));
        assert!(!name_matches("db.example.com", "db2.example.com"));
        assert!(name_matches("*.example.com", "db.example.com"));
        assert!(
            !name_matches("*.example.com", "a.db.example.com"),
            "one label only"
        );
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(
            !name_matches("*.example.com", ".example.com"),
            "an empty label"
        );
        assert!(!name_matches("db*.example.com", "db1.example.com"));
        assert!(!name_matches("*", "localhost"));
        assert!(!name_matches("localhost\0.evil", "localhost"));
        assert!(name_matches("127.0.0.1", "127.0.0.1"));
    }
}
