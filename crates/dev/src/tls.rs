//! `tsunagu dev tls`: a certificate authority made for one run, a server certificate it
//! signs, and client certificates for services on mutual TLS, so that the demo, the browser
//! tests and a developer's `tsunagu serve` speak TLS with a CA the clients are given (never
//! "accept any certificate").

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use std::path::{Path, PathBuf};

/// The names the server certificate carries when none are given.
pub const DEFAULT_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// What [`make`] wrote.
#[derive(Debug, Clone)]
pub struct DevTls {
    /// The CA's certificate: give it to clients (`--ca-file`, `ca_file`).
    pub ca: PathBuf,
    /// The server's certificate (`[server] tls_cert`).
    pub cert: PathBuf,
    /// The server's key (`[server] tls_key`).
    pub key: PathBuf,
    /// Base64 of the SHA-256 of the server key's SubjectPublicKeyInfo (Chromium's
    /// `--ignore-certificate-errors-spki-list`, which trusts exactly this key).
    pub spki_sha256: String,
    /// The client certificates made, in the order asked for.
    pub clients: Vec<DevClient>,
}

/// A client certificate for mutual TLS (`client-<name>.pem`, `client-<name>-key.pem`).
#[derive(Debug, Clone)]
pub struct DevClient {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// What the service registers as `tls_client_certificate`.
    pub x5t_s256: String,
}

/// Makes a CA and a server certificate for `hosts` (DNS names or IP addresses) in `out`:
/// `ca.pem`, `server.pem` and `server-key.pem` (valid for 30 days, ECDSA P-256).
pub fn make(out: &Path, hosts: &[String]) -> anyhow::Result<DevTls> {
    make_with_clients(out, hosts, &[])
}

/// [`make`], and a client certificate (ClientAuth) for each of `clients` signed by the same
/// CA: give `ca.pem` to the platform as `[server] client_ca`.
pub fn make_with_clients(
    out: &Path,
    hosts: &[String],
    clients: &[String],
) -> anyhow::Result<DevTls> {
    std::fs::create_dir_all(out)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tsunagu development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let (not_before, not_after) = validity();
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    server_cert(out, hosts, &issuer)?;
    let clients = clients
        .iter()
        .map(|name| client_cert(out, name, &issuer))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ca = out.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem())?;
    let cert = out.join("server.pem");
    let key = out.join("server-key.pem");
    let spki_sha256 = spki_pin(&key)?;
    Ok(DevTls {
        ca,
        cert,
        key,
        spki_sha256,
        clients,
    })
}

/// Writes `client-<name>.pem` (the leaf, then the CA) and `client-<name>-key.pem`.
fn client_cert(out: &Path, name: &str, issuer: &Issuer<'_, KeyPair>) -> anyhow::Result<DevClient> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        anyhow::bail!("--client `{name}`: use letters, digits, `-` and `_`");
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (not_before, not_after) = validity();
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    let key_path = out.join(format!("client-{name}-key.pem"));
    write_key(&key_path, &key)?;
    let cert_path = out.join(format!("client-{name}.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    Ok(DevClient {
        name: name.to_owned(),
        cert: cert_path,
        key: key_path,
        x5t_s256: tsunagu_crypto::b64::url_encode(tsunagu_crypto::sha256(cert.der())),
    })
}

fn write_key(path: &Path, key: &KeyPair) -> anyhow::Result<()> {
    std::fs::write(path, key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Writes `server.pem` (the leaf, then the CA) and `server-key.pem`.
fn server_cert(out: &Path, hosts: &[String], issuer: &Issuer<'_, KeyPair>) -> anyhow::Result<()> {
    let hosts: Vec<String> = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect()
    } else {
        hosts.to_vec()
    };
    // rcgen makes an IP address subjectAltName of each name that parses as one.
    let mut params = CertificateParams::new(hosts.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (not_before, not_after) = validity();
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write_key(&out.join("server-key.pem"), &key)?;
    std::fs::write(out.join("server.pem"), cert.pem())?;
    Ok(())
}

fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(30),
    )
}

/// The SPKI pin of the key in `key_pem_path`.
fn spki_pin(key_pem_path: &Path) -> anyhow::Result<String> {
    let key = KeyPair::from_pem(&std::fs::read_to_string(key_pem_path)?)?;
    let digest = tsunagu_crypto::sha256(&key.subject_public_key_info());
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// `tsunagu dev tls`: writes the files and says how to use them.
pub fn run(out: &Path, hosts: &[String], clients: &[String]) -> anyhow::Result<()> {
    let made = make_with_clients(out, hosts, clients)?;
    println!("CA certificate (give it to clients): {}", made.ca.display());
    println!(
        "[server] tls_cert = {:?}\n[server] tls_key = {:?}",
        made.cert, made.key
    );
    println!(
        "SPKI SHA-256 (Chromium's --ignore-certificate-errors-spki-list): {}",
        made.spki_sha256
    );
    for client in &made.clients {
        println!(
            "client `{}`: tls_client_cert = {:?}, tls_client_key = {:?}, \
             register tls_client_certificate = \"{}\" ([server] client_ca = {:?})",
            client.name, client.cert, client.key, client.x5t_s256, made.ca
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_are_for_client_auth_chain_to_the_ca_and_print_their_thumbprint() {
        let dir = tempfile::tempdir().unwrap();
        let made = make_with_clients(dir.path(), &[], &["daycare".into()]).unwrap();
        let client = &made.clients[0];
        let pem = std::fs::read(&client.cert).unwrap();
        let (_, leaf) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        assert_eq!(
            client.x5t_s256,
            tsunagu_crypto::b64::url_encode(tsunagu_crypto::sha256(&leaf.contents)),
            "x5t#S256 is the SHA-256 of the DER"
        );
        assert_eq!(
            tsunagu_crypto::x509::x5t_s256_of_pem(std::str::from_utf8(&pem).unwrap()).unwrap(),
            client.x5t_s256
        );
        let leaf = leaf.parse_x509().unwrap();
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let ca_pem = std::fs::read(&made.ca).unwrap();
        let (_, ca) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
        assert_eq!(leaf.issuer(), ca.parse_x509().unwrap().subject());
        assert!(
            make_with_clients(dir.path(), &[], &["../evil".into()]).is_err(),
            "a client name is a file name part"
        );
    }

    #[test]
    fn the_server_certificate_names_its_hosts_and_chains_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let made = make(dir.path(), &["tsunagu.test".into(), "10.0.0.1".into()]).unwrap();
        let pem = std::fs::read(&made.cert).unwrap();
        let (_, leaf) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let leaf = leaf.parse_x509().unwrap();
        let names = format!(
            "{:?}",
            leaf.subject_alternative_name().unwrap().unwrap().value
        );
        assert!(
            names.contains("DNSName(\"tsunagu.test\")")
                && names.contains("IPAddress([10, 0, 0, 1])"),
            "{names}"
        );
        let ca_pem = std::fs::read(&made.ca).unwrap();
        let (_, ca) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
        let ca = ca.parse_x509().unwrap();
        assert_eq!(leaf.issuer(), ca.subject());
        let spki = tsunagu_crypto::sha256(leaf.public_key().raw);
        assert_eq!(
            made.spki_sha256,
            base64::engine::general_purpose::STANDARD.encode(spki),
            "the pin is the certificate's own SubjectPublicKeyInfo"
        );
    }
}
