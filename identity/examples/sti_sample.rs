//! Creates a sample STI PKI for trying verification offline, and prints a
//! signed SHAKEN Identity header.
//!
//! ```text
//! cargo run -p peering-identity --example sti_sample -- CA_DIR REPO_DIR [FROM_TN TO_TN]
//! ```
//!
//! Writes `CA_DIR/sti-ca.pem` (the trust anchor), `REPO_DIR/sp-sample.pem`
//! (the signing certificate, named as the last path segment of its `x5u`),
//! `CA_DIR/sp-sample.key` (its private key, for signing more requests; the
//! trust-anchor loader ignores `.key` files) and prints an `Identity` header value for a call from
//! FROM_TN to TO_TN issued now (valid for 60 s).

use std::path::PathBuf;
use std::time::SystemTime;

use peering_identity::der::{TnEntry, encode_tn_auth_list};
use peering_identity::passport::{Attestation, Signer};
use peering_identity::rfc8224::StirSigner;
use peering_identity::{RequestView, unix_seconds};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

const X5U: &str = "https://sti.example.net/certs/sp-sample.pem";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ca_dir, repo_dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: sti_sample CA_DIR REPO_DIR [FROM_TN TO_TN]");
        std::process::exit(64);
    };
    let (from, to) = match rest {
        [f, t] => (f.clone(), t.clone()),
        _ => ("+12155550100".to_owned(), "+12155550101".to_owned()),
    };
    let (ca_dir, repo_dir) = (PathBuf::from(ca_dir), PathBuf::from(repo_dir));
    std::fs::create_dir_all(&ca_dir)?;
    std::fs::create_dir_all(&repo_dir)?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Sample STI-CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(
        ca_params,
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
    )?;

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "SHAKEN sample SP");
    // RFC 8226 TN authorization list: a service provider code only.
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 26],
            encode_tn_auth_list(&[TnEntry::Spc("1234".to_owned())]),
        ));
    let cert = params.signed_by(&key, &ca)?;

    std::fs::write(ca_dir.join("sti-ca.pem"), ca.pem())?;
    std::fs::write(repo_dir.join("sp-sample.pem"), cert.pem())?;
    std::fs::write(ca_dir.join("sp-sample.key"), key.serialize_pem())?;

    let signer = StirSigner::new(Signer::from_pem(&key.serialize_pem(), X5U)?);
    let from_header = format!("<sip:{from}@example.com;user=phone>");
    let to_header = format!("<sip:{to}@example.net;user=phone>");
    let req = RequestView {
        from: &from_header,
        to: &to_header,
        ..RequestView::default()
    };
    let identity = signer.sign_shaken(
        &req,
        Attestation::A,
        "5c6ab1b1-56d5-4b5c-a9a0-2d0e6c3b0a57",
        unix_seconds(SystemTime::now()),
    )?;
    println!("From: {from_header};tag=sample\nTo: {to_header}\nIdentity: {identity}");
    Ok(())
}
