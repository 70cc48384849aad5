//! Conditions a binding reports, in the shape Kubernetes operators surface (`type`, `status`, `reason`,
//! `message`, `lastTransitionTime`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Which aspect a condition describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConditionType {
    /// The binding can serve requests.
    Ready,
    /// The binding serves requests but with reduced function (a fallback is in use, a provider is slow).
    Degraded,
    /// The binding is shedding or queueing load.
    Backpressure,
}

/// Whether the condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// One condition of a binding. Serialized as Kubernetes writes conditions: `type`, `status`, `reason`,
/// `message`, `lastTransitionTime` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Condition {
    /// The aspect.
    #[serde(rename = "type")]
    pub kind: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase machine-readable reason, e.g. `AdapterBuilt`, `ProviderUnavailable`.
    pub reason: String,
    /// A human-readable message.
    pub message: String,
    /// When `status` last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub last_transition_time: OffsetDateTime,
}

impl Condition {
    /// A condition.
    pub fn new(
        kind: ConditionType,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
        at: OffsetDateTime,
    ) -> Condition {
        Condition { kind, status, reason: reason.into(), message: message.into(), last_transition_time: at }
    }
}

/// The conditions of one binding, at most one per type (deserializing a list with a type twice fails).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Conditions(Vec<Condition>);

impl<'de> Deserialize<'de> for Conditions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut list = Vec::<Condition>::deserialize(d)?;
        list.sort_by_key(|c| c.kind);
        if let Some(pair) = list.windows(2).find(|w| w[0].kind == w[1].kind) {
            return Err(serde::de::Error::custom(format!("condition type {:?} appears twice", pair[0].kind)));
        }
        Ok(Conditions(list))
    }
}

impl Conditions {
    /// No conditions.
    pub fn new() -> Conditions {
        Conditions(Vec::new())
    }

    /// Sets a condition. The transition time moves only when the status changes, so an operator sees how
    /// long a state has lasted; reason and message are always updated.
    pub fn set(
        &mut self,
        kind: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        now: OffsetDateTime,
    ) {
        match self.0.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status {
                    c.status = status;
                    c.last_transition_time = now;
                }
                c.reason = reason.to_owned();
                c.message = message.to_owned();
            }
            None => {
                self.0.push(Condition::new(kind, status, reason, message, now));
                self.0.sort_by_key(|c| c.kind);
            }
        }
    }

    /// The condition of `kind`, if set.
    pub fn get(&self, kind: ConditionType) -> Option<&Condition> {
        self.0.iter().find(|c| c.kind == kind)
    }

    /// True when `Ready` is `True`.
    pub fn is_ready(&self) -> bool {
        self.get(ConditionType::Ready).is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// All conditions, ordered by type.
    pub fn iter(&self) -> impl Iterator<Item = &Condition> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0 = datetime!(2026-01-01 0:00 UTC);
        let t1 = datetime!(2026-01-01 1:00 UTC);
        let t2 = datetime!(2026-01-01 2:00 UTC);
        let mut c = Conditions::new();
        c.set(ConditionType::Ready, ConditionStatus::True, "AdapterBuilt", "ok", t0);
        c.set(ConditionType::Ready, ConditionStatus::True, "AdapterBuilt", "still ok", t1);
        assert_eq!(c.get(ConditionType::Ready).map(|c| c.last_transition_time), Some(t0));
        assert_eq!(c.get(ConditionType::Ready).map(|c| c.message.as_str()), Some("still ok"));
        c.set(ConditionType::Ready, ConditionStatus::False, "ProviderUnavailable", "503", t2);
        assert_eq!(c.get(ConditionType::Ready).map(|c| c.last_transition_time), Some(t2));
        assert!(!c.is_ready());
    }

    #[test]
    fn serializes_in_the_kubernetes_shape_and_refuses_duplicates() {
        let mut c = Conditions::new();
        c.set(ConditionType::Ready, ConditionStatus::True, "AdapterBuilt", "ok", datetime!(2026-01-01 0:00 UTC));
        let json = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(
            json,
            r#"[{"type":"Ready","status":"True","reason":"AdapterBuilt","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]"#
        );
        assert_eq!(serde_json::from_str::<Conditions>(&json).ok(), Some(c));
        let twice = format!("[{},{}]", &json[1..json.len() - 1], &json[1..json.len() - 1]);
        assert!(serde_json::from_str::<Conditions>(&twice).is_err());
    }
}
