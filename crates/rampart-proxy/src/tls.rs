//! TLS termination: certificates chosen by SNI, reloaded when their files change;
//! and the TLS client settings for an upstream's `https` targets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rampart_config::{Tls, UpstreamTls};
use rustls::client::ClientConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate or key that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("{path}: no PEM certificate found")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no usable PEM private key.
    #[error("{path}: no usable PEM private key found ({reason})")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

#[derive(Debug)]
struct CertEntry {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The certificates of one listener; the resolver rustls asks on each handshake.
#[derive(Debug)]
pub struct CertStore {
    entries: ArcSwap<Vec<CertEntry>>,
    source: Mutex<(Tls, Vec<Option<SystemTime>>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn stamps(tls: &Tls) -> Vec<Option<SystemTime>> {
    tls.certificates
        .iter()
        .flat_map(|c| [modified(&c.cert), modified(&c.key)])
        .collect()
}

fn load(tls: &Tls) -> Result<Vec<CertEntry>, TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    tls.certificates
        .iter()
        .map(|c| {
            let read = |path: &Path| {
                std::fs::read(path).map_err(|source| TlsError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            };
            let cert_pem = read(&c.cert)?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .filter_map(Result::ok)
                .collect();
            if chain.is_empty() {
                return Err(TlsError::NoCertificate {
                    path: c.cert.clone(),
                });
            }
            let key_pem = read(&c.key)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
                path: c.key.clone(),
                reason: e.to_string(),
            })?;
            let signing_key =
                provider
                    .key_provider
                    .load_private_key(key)
                    .map_err(|e| TlsError::Key {
                        path: c.key.clone(),
                        reason: e.to_string(),
                    })?;
            Ok(CertEntry {
                names: c.server_names.clone(),
                key: Arc::new(CertifiedKey::new(chain, signing_key)),
            })
        })
        .collect()
}

impl CertStore {
    /// Loads every certificate of `tls`; any failure names the file.
    pub fn new(tls: &Tls) -> Result<Self, TlsError> {
        Ok(Self {
            entries: ArcSwap::from_pointee(load(tls)?),
            source: Mutex::new((tls.clone(), stamps(tls))),
        })
    }

    /// Replaces the certificates (on config reload); on error the old ones stay.
    pub fn replace(&self, tls: &Tls) -> Result<(), TlsError> {
        let entries = load(tls)?;
        *self.source.lock() = (tls.clone(), stamps(tls));
        self.entries.store(Arc::new(entries));
        Ok(())
    }

    /// Reloads when a certificate or key file changed; returns whether it did.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let tls = {
            let source = self.source.lock();
            if stamps(&source.0) == source.1 {
                return Ok(false);
            }
            source.0.clone()
        };
        self.replace(&tls).map(|()| true)
    }

    /// The TLS settings this store was loaded from.
    pub fn tls(&self) -> Tls {
        self.source.lock().0.clone()
    }

    /// A rustls server config using this store (TLS 1.2 and 1.3; ALPN h2 and http/1.1).
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"));
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let entries = self.entries.load();
        let chosen = hello.server_name().and_then(|sni| {
            let sni = sni.to_ascii_lowercase();
            let exact = entries.iter().find(|e| e.names.contains(&sni));
            exact.or_else(|| {
                entries.iter().find(|e| {
                    e.names.iter().any(|n| {
                        n.strip_prefix('*').is_some_and(|suffix| {
                            suffix.starts_with('.')
                                && sni.len() > suffix.len()
                                && sni.ends_with(suffix)
                        })
                    })
                })
            })
        });
        chosen
            .or_else(|| entries.first())
            .map(|e| Arc::clone(&e.key))
    }
}

/// The TLS client settings for an upstream's `https` targets (TLS 1.2 and 1.3, always
/// verifying the target's certificate): the roots of its `ca_file` only, or else the
/// web PKI roots; its client certificate, if any; the ALPN protocols offered. Fails
/// only on settings the config step would have refused.
pub fn upstream_client_config(
    tls: &UpstreamTls,
    alpn: &[&[u8]],
) -> Result<ClientConfig, rustls::Error> {
    let roots = match &tls.roots {
        Some(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots.add(cert.clone())?;
            }
            roots
        }
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots);
    let mut config = match &tls.client_auth {
        Some(auth) => builder.with_client_auth_cert(auth.chain.clone(), auth.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
