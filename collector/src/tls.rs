//! HTTPS to adit: rustls (ring), trusting the system's certificate store
//! and, if given, a CA file (PEM) for an adit with its own certificate
//! authority. `http://` URLs go through the same connector in plain text.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// The connector of every request to adit.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A TLS client configuration trusting the system's roots, plus the
/// certificates of `ca_file` when one is given (at least one must parse).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let bad = |reason: String| Error::Settings {
            source_name: format!("CA file {}", path.display()),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("none of its certificates is usable as a root".into()));
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Settings {
                source_name: "TLS".into(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's roots alone.
pub fn native_config() -> Arc<ClientConfig> {
    // Without a CA file nothing can fail but the protocol versions, which
    // ring always has.
    client_config(None).expect("ring supports rustls' default protocol versions")
}

/// A connector for `http://` and `https://` URLs with `config`.
pub fn connector(config: Arc<ClientConfig>, connect_timeout: Duration) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*config).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        assert!(client_config(None).is_ok());
        let dir = std::env::temp_dir();
        let empty = dir.join(format!(
            "adit-collector-empty-ca-{}.pem",
            std::process::id()
        ));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_file(&empty).unwrap();
        let err = client_config(Some(Path::new("/no/such/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
    }
}
