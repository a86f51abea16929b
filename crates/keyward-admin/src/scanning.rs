//! GitHub's secret-scanning public keys, and the check of the signature GitHub puts on every
//! leak report.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

/// The public keys GitHub signs its secret-scanning leak reports with, in the shape GitHub
/// serves them at `https://api.github.com/meta/public_keys/secret_scanning`:
///
/// ```json
/// {"public_keys": [{"key_identifier": "90a4…", "key": "-----BEGIN PUBLIC KEY-----\n…", "is_current": true}]}
/// ```
///
/// Every listed key is accepted, current or not, so that reports signed just before GitHub
/// rotates its keys still verify. Save the document to a file and load it at start-up; fetch
/// it again when GitHub announces a new key.
///
/// # Example
///
/// ```
/// use keyward_admin::GitHubScanningKeys;
///
/// let err = GitHubScanningKeys::from_json(r#"{"public_keys": []}"#).unwrap_err();
/// assert!(err.to_string().contains("no keys"));
/// let err = GitHubScanningKeys::from_json(
///     r#"{"public_keys": [{"key_identifier": "k1", "key": "not a key", "is_current": true}]}"#,
/// )
/// .unwrap_err();
/// assert!(err.to_string().contains("k1"));
/// ```
#[derive(Clone)]
pub struct GitHubScanningKeys {
    keys: Vec<(String, VerifyingKey)>,
}

/// Why a secret-scanning key document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GitHub secret-scanning keys: {message}")]
pub struct ScanningKeysError {
    message: String,
}

impl ScanningKeysError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
struct Document {
    public_keys: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    key_identifier: String,
    key: String,
}

impl GitHubScanningKeys {
    /// Reads the JSON document GitHub serves.
    ///
    /// # Errors
    ///
    /// [`ScanningKeysError`] when the document is not of that shape, lists no keys, or a key
    /// is not a P-256 public key in PEM (the error names its identifier).
    pub fn from_json(json: &str) -> Result<Self, ScanningKeysError> {
        let document: Document = serde_json::from_str(json).map_err(|err| {
            ScanningKeysError::new(format!(
                "expected {{\"public_keys\":[{{\"key_identifier\",\"key\",\"is_current\"}}]}}: \
                 {err}"
            ))
        })?;
        if document.public_keys.is_empty() {
            return Err(ScanningKeysError::new("the document lists no keys"));
        }
        let keys = document
            .public_keys
            .into_iter()
            .map(|entry| {
                let key = VerifyingKey::from_public_key_pem(entry.key.trim()).map_err(|err| {
                    ScanningKeysError::new(format!(
                        "the key {:?} is not a P-256 public key in PEM: {err}",
                        entry.key_identifier
                    ))
                })?;
                Ok((entry.key_identifier, key))
            })
            .collect::<Result<_, ScanningKeysError>>()?;
        Ok(Self { keys })
    }

    /// The identifiers of the keys, in the document's order.
    pub fn key_identifiers(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Whether `signature` (base64 of a DER ECDSA P-256 / SHA-256 signature) is the key
    /// `key_id`'s over `body`.
    pub(crate) fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == key_id) else {
            return false;
        };
        let Ok(der) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = DerSignature::try_from(der.as_slice()) else {
            return false;
        };
        key.verify(body, &signature).is_ok()
    }
}

impl fmt::Debug for GitHubScanningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubScanningKeys")
            .field(
                "key_identifiers",
                &self.key_identifiers().collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};

    use super::*;

    fn document(id: &str, key: &SigningKey) -> String {
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        serde_json::json!({"public_keys": [{"key_identifier": id, "key": pem, "is_current": true}]})
            .to_string()
    }

    #[test]
    fn verifies_low_and_high_s_signatures_and_nothing_else() {
        let signer = SigningKey::random(&mut rand::rngs::OsRng);
        let keys = GitHubScanningKeys::from_json(&document("k1", &signer)).unwrap();
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let signature: Signature = signer.sign(body);
        let b64 = |sig: &Signature| STANDARD.encode(sig.to_der().as_bytes());
        assert!(keys.verify("k1", &b64(&signature), body));
        // Go's signer (GitHub's) does not normalise s; both halves must verify.
        let (r, s) = signature.split_scalars();
        let flipped = Signature::from_scalars(r, -*s).unwrap();
        assert!(keys.verify("k1", &b64(&flipped), body));

        assert!(!keys.verify("k2", &b64(&signature), body));
        assert!(!keys.verify("k1", &b64(&signature), b"[]"));
        assert!(!keys.verify("k1", "not base64!", body));
        assert!(!keys.verify("k1", &STANDARD.encode(b"not der"), body));
        let other = SigningKey::random(&mut rand::rngs::OsRng);
        let forged: Signature = other.sign(body);
        assert!(!keys.verify("k1", &b64(&forged), body));
    }

    #[test]
    fn refuses_documents_of_another_shape() {
        for bad in [
            "",
            "[]",
            r#"{"keys": []}"#,
            r#"{"public_keys": [{"key": "x"}]}"#,
        ] {
            assert!(GitHubScanningKeys::from_json(bad).is_err(), "{bad}");
        }
        let signer = SigningKey::random(&mut rand::rngs::OsRng);
        let keys = GitHubScanningKeys::from_json(&document("k1", &signer)).unwrap();
        assert_eq!(keys.key_identifiers().collect::<Vec<_>>(), ["k1"]);
        assert!(format!("{keys:?}").contains("k1"));
    }
}
