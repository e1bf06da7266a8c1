//! Identifiers, each its own type so that one cannot be passed where another is meant (a
//! resident's internal account id where a service's pairwise id belongs, a consumer where a
//! provider belongs). They are strings on the wire and in storage.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id_type!(
    /// A resident's internal account id. Never shown to a service, never in a ledger leaf.
    AccountId
);
id_type!(
    /// A device credential's id.
    DeviceId
);
id_type!(
    /// A registered service (`svc_…`), or the platform itself as the provider of identity
    /// claims ([`crate::service::PLATFORM_PROVIDER`]).
    ServiceId
);
id_type!(
    /// A purpose, unique within its consumer.
    PurposeId
);
id_type!(
    /// A resident's consent.
    ConsentId
);
id_type!(
    /// A ticket (its `jti`).
    TicketId
);
id_type!(
    /// An OpenID Connect grant.
    GrantId
);
id_type!(
    /// A resident's pairwise identifier in one sector (a service, or the ledger): what the
    /// sector sees instead of the account id.
    PairwiseId
);
id_type!(
    /// A committee member, as configured.
    MemberId
);
id_type!(
    /// A pending OpenID Connect authorization request.
    RequestId
);

impl ServiceId {
    /// Whether this is the platform itself (the provider of identity claims).
    pub fn is_platform(&self) -> bool {
        self.0 == crate::service::PLATFORM_PROVIDER
    }

    /// The platform as a provider.
    pub fn platform() -> ServiceId {
        ServiceId(crate::service::PLATFORM_PROVIDER.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_string_on_the_wire_and_compares_with_text() {
        let id = AccountId::from("a1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"a1\"");
        assert_eq!(serde_json::from_str::<AccountId>("\"a1\"").unwrap(), id);
        assert_eq!(id, "a1");
        assert_eq!("a1", id);
        assert_eq!(id.to_string(), "a1");
        assert!(ServiceId::platform().is_platform());
        assert!(!ServiceId::from("svc_x").is_platform());
    }
}
