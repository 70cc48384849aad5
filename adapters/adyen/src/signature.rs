//! Adyen's notification HMAC: the signing string, the key and the Base64 signature.
//!
//! Scheme (Adyen's "verify HMAC signatures" docs): join with `:` the item's `pspReference`,
//! `originalReference`, `merchantAccountCode`, `merchantReference`, `amount.value`, `amount.currency`,
//! `eventCode` and `success`, missing fields as empty strings and nothing escaped; HMAC-SHA256 keyed with
//! the hex-decoded HMAC key; Base64 (standard alphabet, padded).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use commerce_ports::webhook::{WebhookError, WebhookErrorKind};
use commerce_ports::{Secret, constant_time_eq};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// The eight notification-item fields Adyen signs, as they appear in the JSON (`amount.value` as its
/// decimal text, `success` as `"true"` / `"false"`). A field the item lacks is the empty string.
///
/// The set is fixed by Adyen's scheme, so the struct is deliberately exhaustive: build it with a struct
/// literal and `..Default::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedFields<'a> {
    /// `pspReference`.
    pub psp_reference: &'a str,
    /// `originalReference` (the payment a modification belongs to).
    pub original_reference: &'a str,
    /// `merchantAccountCode`.
    pub merchant_account_code: &'a str,
    /// `merchantReference`.
    pub merchant_reference: &'a str,
    /// `amount.value` in minor units, as decimal text (`"1000"`).
    pub amount_value: &'a str,
    /// `amount.currency` (`"EUR"`).
    pub amount_currency: &'a str,
    /// `eventCode` (`"AUTHORISATION"`).
    pub event_code: &'a str,
    /// `success` (`"true"` or `"false"`).
    pub success: &'a str,
}

impl SignedFields<'_> {
    /// The string that is signed: the eight fields joined with `:`, nothing escaped.
    pub fn signing_string(&self) -> String {
        [
            self.psp_reference,
            self.original_reference,
            self.merchant_account_code,
            self.merchant_reference,
            self.amount_value,
            self.amount_currency,
            self.event_code,
            self.success,
        ]
        .join(":")
    }
}

/// A decoded HMAC key; zeroed on drop, never printed.
#[derive(Clone)]
pub(crate) struct HmacKey(Zeroizing<Vec<u8>>);

impl HmacKey {
    /// Decodes the hex key Adyen's Customer Area shows (either case).
    pub(crate) fn from_hex(key_hex: &Secret) -> Result<HmacKey, WebhookError> {
        let invalid = |message: &str| WebhookError::new(WebhookErrorKind::InvalidSecret, message);
        if key_hex.is_empty() {
            return Err(invalid("the Adyen HMAC key is empty"));
        }
        let bytes = hex::decode(key_hex.expose())
            .map_err(|_| invalid("the Adyen HMAC key is not hexadecimal (an even number of 0-9, A-F)"))?;
        Ok(HmacKey(Zeroizing::new(bytes)))
    }

    /// The HMAC-SHA256 tag of `data`; `None` only if the key were refused, which HMAC never does.
    pub(crate) fn tag(&self, data: &[u8]) -> Option<[u8; TAG_LEN]> {
        let mut mac = HmacSha256::new_from_slice(&self.0).ok()?;
        mac.update(data);
        Some(mac.finalize().into_bytes().into())
    }

    /// Whether `signature` (Base64) is the signature of `fields`, compared in constant time. A signature
    /// that is not Base64 of the right length simply does not match.
    pub(crate) fn matches(&self, fields: &SignedFields<'_>, signature: &str) -> bool {
        let Some(expected) = self.tag(fields.signing_string().as_bytes()) else {
            return false;
        };
        let mut decoded = [0u8; TAG_LEN];
        match STANDARD.decode_slice(signature, &mut decoded) {
            Ok(len) => len == TAG_LEN && constant_time_eq(&decoded, &expected),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey([redacted])")
    }
}

/// The Base64 `hmacSignature` Adyen would put in `additionalData` for an item with these fields.
///
/// For simulators and tests: a loopback Adyen signs its notifications with this.
///
/// # Errors
/// `InvalidSecret` when `key_hex` is empty or not hexadecimal.
///
/// ```
/// use commerce_adyen::{SignedFields, signature};
/// use commerce_ports::Secret;
///
/// let key = Secret::new("9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915D6");
/// let fields = SignedFields {
///     psp_reference: "test_REPORT_AVAILABLE",
///     merchant_account_code: "Magento2Rik",
///     merchant_reference: "testMerchantRef1",
///     amount_value: "0",
///     amount_currency: "EUR",
///     event_code: "REPORT_AVAILABLE",
///     success: "true",
///     ..Default::default()
/// };
/// assert_eq!(signature(&key, &fields)?, "NuEkADFmlCC6VgX+wcoPAegIWxVPNBPCuKlM4Hzo5qc=");
/// # Ok::<(), commerce_ports::webhook::WebhookError>(())
/// ```
pub fn signature(key_hex: &Secret, fields: &SignedFields<'_>) -> Result<String, WebhookError> {
    let key = HmacKey::from_hex(key_hex)?;
    key.tag(fields.signing_string().as_bytes())
        .map(|tag| STANDARD.encode(tag))
        .ok_or_else(|| WebhookError::new(WebhookErrorKind::InvalidSecret, "the Adyen HMAC key cannot key HMAC-SHA256"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915D6";

    fn key() -> HmacKey {
        match HmacKey::from_hex(&Secret::new(KEY)) {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn published_vector_raw_test_payload() {
        // Adyen's Java library tests: HMAC-Base64 of the raw string `TestPayload`.
        let tag = key().tag(b"TestPayload").map(|t| STANDARD.encode(t));
        assert_eq!(tag.as_deref(), Some("YA9/UDjldIO4Gq68X4ATYYoEaPYH4f4k2uzBBzEF1PA="));
    }

    #[test]
    fn published_vector_signing_string() {
        let raw = b"test_REPORT_AVAILABLE::Magento2Rik:testMerchantRef1:0:EUR:REPORT_AVAILABLE:true";
        let tag = key().tag(raw).map(|t| STANDARD.encode(t));
        assert_eq!(tag.as_deref(), Some("NuEkADFmlCC6VgX+wcoPAegIWxVPNBPCuKlM4Hzo5qc="));
    }

    #[test]
    fn signing_string_keeps_empty_fields_and_does_not_escape() {
        let fields = SignedFields { psp_reference: "a:b", success: "true", ..Default::default() };
        assert_eq!(fields.signing_string(), "a:b:::::::true");
    }

    #[test]
    fn lower_case_key_is_the_same_key() {
        let lower = HmacKey::from_hex(&Secret::new(KEY.to_ascii_lowercase())).ok().and_then(|k| k.tag(b"x"));
        assert_eq!(lower, key().tag(b"x"));
    }

    #[test]
    fn bad_keys_are_invalid_secret_without_echoing_them() {
        for bad in ["", "zz", "ABC", "9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915DG", " 00"] {
            let err = HmacKey::from_hex(&Secret::new(bad)).err();
            assert_eq!(err.as_ref().map(|e| e.kind), Some(WebhookErrorKind::InvalidSecret), "{bad:?}");
            assert!(err.is_some_and(|e| bad.is_empty() || !e.message.contains(bad)));
        }
    }

    #[test]
    fn undecodable_signatures_do_not_match() {
        let fields = SignedFields::default();
        for bad in ["", "not base64!", "YA9/UDjldIO4Gq68X4ATYYoEaPYH4f4k2uzBBzEF1PA", "AAAA"] {
            assert!(!key().matches(&fields, bad), "{bad}");
        }
        let good = key().tag(fields.signing_string().as_bytes()).map(|t| STANDARD.encode(t));
        assert!(good.is_some_and(|g| key().matches(&fields, &g)));
    }

    #[test]
    fn debug_redacts_the_key() {
        assert_eq!(format!("{:?}", key()), "HmacKey([redacted])");
    }
}
