//! A throw-away PKI for TLS tests: a CA and leaf certificates made with
//! rcgen, written as PEM files into a temporary folder.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA that signs leaf certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// PEM of the CA certificate.
    pub cert_pem: String,
}

/// A leaf certificate and key on disk.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// PEM certificate file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
}

impl TestCa {
    /// A new self-signed CA.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA self-signed");
        let cert_pem = cert.pem();
        Self {
            issuer: Issuer::new(params, key),
            cert_pem,
        }
    }

    /// Writes the CA certificate to `dir/name` and returns the path.
    pub fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.cert_pem).expect("write CA");
        path
    }

    /// Issues a leaf for server and client use with DNS names, IP addresses
    /// and `sip:` URIs in its subjectAltName, written as `dir/<stem>.crt`
    /// and `dir/<stem>.key`.
    pub fn issue(&self, dir: &Path, stem: &str, sans: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, sans.first().copied().unwrap_or(stem));
        for san in sans {
            let entry = if let Ok(ip) = san.parse() {
                SanType::IpAddress(ip)
            } else if san.starts_with("sip:") {
                SanType::URI((*san).try_into().expect("uri SAN"))
            } else {
                SanType::DnsName((*san).try_into().expect("dns SAN"))
            };
            params.subject_alt_names.push(entry);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf signed");
        let leaf = Leaf {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write leaf cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write leaf key");
        leaf
    }
}
