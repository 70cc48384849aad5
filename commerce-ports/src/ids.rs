//! Validated identifiers and the small value types shared by every port.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::money::Money;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier, e.g. "tenant id".
        kind: &'static str,
    },
    /// The identifier is longer than allowed.
    #[error("{kind} is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The identifier has a character outside its alphabet.
    #[error("{kind} `{value}` has a character that is not allowed at position {position}; allowed: {allowed}")]
    BadCharacter {
        /// Which identifier.
        kind: &'static str,
        /// The offending value (identifiers are not secret).
        value: String,
        /// Byte position of the first bad character.
        position: usize,
        /// A description of the alphabet.
        allowed: &'static str,
    },
}

fn check(
    kind: &'static str,
    value: &str,
    max: usize,
    ok: fn(u8) -> bool,
    allowed: &'static str,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > max {
        return Err(IdError::TooLong { kind, len: value.len(), max });
    }
    if let Some(position) = value.bytes().position(|b| !ok(b)) {
        return Err(IdError::BadCharacter { kind, value: value.to_owned(), position, allowed });
    }
    Ok(())
}

fn slug_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// 1 to 64 characters of `A-Z a-z 0-9 - _ . :`.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`IdError`] naming the identifier and what is wrong with it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value, 64, slug_byte, "A-Z a-z 0-9 - _ . :")?;
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// A tenant: one merchant of a multi-tenant host.
    TenantId, "tenant id"
);
slug_id!(
    /// A sales channel of a tenant (a web shop, a physical store, a marketplace).
    ChannelId, "channel id"
);
slug_id!(
    /// A physical store.
    StoreId, "store id"
);
slug_id!(
    /// A register (till, point of sale) in a store.
    RegisterId, "register id"
);
slug_id!(
    /// A payment intent, as the domain names it (not the provider's reference).
    IntentId, "intent id"
);
slug_id!(
    /// A device attached to the hardware gateway.
    DeviceId, "device id"
);
slug_id!(
    /// A replicated dataset, e.g. `catalog` or `orders`.
    DatasetId, "dataset id"
);

/// A caller-chosen key that makes a mutating operation safe to retry.
///
/// Non-empty, at most 255 printable ASCII characters (space to `~`), which is what the strictest provider
/// (Stripe) accepts. Adapters whose provider accepts fewer characters derive a stable shorter key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Validates and wraps `value`.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than 255 characters or not printable ASCII.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check("idempotency key", &value, Self::MAX_LEN, |b| (0x20..=0x7e).contains(&b), "printable ASCII")?;
        Ok(Self(value))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key derived from this one for a sub-operation (e.g. `"<key>:capture"`), still within the limits.
    ///
    /// # Errors
    /// [`IdError`] when the suffix is not printable ASCII or the result would be too long.
    pub fn derive(&self, suffix: &str) -> Result<IdempotencyKey, IdError> {
        IdempotencyKey::new(format!("{}:{suffix}", self.0))
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl std::str::FromStr for IdempotencyKey {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Address {
    /// Recipient or business name.
    pub name: Option<String>,
    /// First street line.
    pub line1: String,
    /// Second street line.
    pub line2: Option<String>,
    /// City or locality.
    pub city: String,
    /// State, province or region code.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
}

impl Address {
    /// An address from its required parts.
    pub fn new(
        line1: impl Into<String>,
        city: impl Into<String>,
        postal_code: impl Into<String>,
        country: impl Into<String>,
    ) -> Address {
        Address {
            name: None,
            line1: line1.into(),
            line2: None,
            city: city.into(),
            region: None,
            postal_code: postal_code.into(),
            country: country.into(),
        }
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Address {
        self.region = Some(region.into());
        self
    }

    /// Sets the recipient name.
    pub fn with_name(mut self, name: impl Into<String>) -> Address {
        self.name = Some(name.into());
        self
    }
}

/// One line of a cart, order or tax document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LineItem {
    /// Line number, unique within its document.
    pub number: u32,
    /// The merchant's item code (SKU).
    pub sku: String,
    /// Human-readable description.
    pub description: String,
    /// Quantity in whole units.
    pub quantity: u32,
    /// Price of one unit.
    pub unit_price: Money,
    /// Tax code of the item (a provider's product taxability code), if any.
    pub tax_code: Option<String>,
}

impl LineItem {
    /// A line from its required parts.
    pub fn new(
        number: u32,
        sku: impl Into<String>,
        description: impl Into<String>,
        quantity: u32,
        unit_price: Money,
    ) -> LineItem {
        LineItem { number, sku: sku.into(), description: description.into(), quantity, unit_price, tax_code: None }
    }

    /// Sets the tax code.
    pub fn with_tax_code(mut self, code: impl Into<String>) -> LineItem {
        self.tax_code = Some(code.into());
        self
    }

    /// `unit_price * quantity`.
    ///
    /// # Errors
    /// [`crate::MoneyError::Overflow`].
    pub fn extended(&self) -> Result<Money, crate::MoneyError> {
        self.unit_price.checked_mul(i64::from(self.quantity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_validated_with_precise_errors() {
        assert!(TenantId::new("acme").is_ok());
        assert_eq!(TenantId::new(""), Err(IdError::Empty { kind: "tenant id" }));
        assert!(matches!(ChannelId::new("we b"), Err(IdError::BadCharacter { position: 2, .. })));
        assert!(matches!(StoreId::new("x".repeat(65)), Err(IdError::TooLong { len: 65, max: 64, .. })));
    }

    #[test]
    fn idempotency_keys_follow_the_strictest_provider() {
        assert!(IdempotencyKey::new("order-1 attempt 1").is_ok());
        assert!(IdempotencyKey::new("k".repeat(255)).is_ok());
        assert!(matches!(IdempotencyKey::new("k".repeat(256)), Err(IdError::TooLong { .. })));
        assert!(matches!(IdempotencyKey::new("caf\u{e9}"), Err(IdError::BadCharacter { .. })));
        assert!(matches!(IdempotencyKey::new("a\nb"), Err(IdError::BadCharacter { position: 1, .. })));
        assert_eq!(IdempotencyKey::new(""), Err(IdError::Empty { kind: "idempotency key" }));
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<TenantId>("\"bad id\"").is_err());
        assert!(serde_json::from_str::<TenantId>("\"good\"").is_ok());
    }

    proptest! {
        #[test]
        fn any_printable_ascii_key_up_to_255_is_accepted(s in "[ -~]{1,255}") {
            let key = IdempotencyKey::new(s.clone());
            prop_assert_eq!(key.map(|k| k.as_str().to_owned()), Ok(s));
        }
    }
}
