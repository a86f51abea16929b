//! Conversion between [`KeyRecord`] and the stored [`Model`].

use std::net::IpAddr;
use std::num::NonZeroU32;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use ipnet::IpNet;
use keyward_core::{
    KeyHint, KeyId, KeyKind, KeyRecord, PreviousSecret, ScopeSet, StoreError, TokenDigest,
};

use crate::entity::Model;
use crate::error::corrupt;

/// Timestamps are kept to the microsecond on every backend; truncating before a write makes
/// the record a store returns equal to the one it reads back later.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The row for `record`.
pub(crate) fn to_model(record: &KeyRecord) -> Result<Model, StoreError> {
    let lifetime_micros = record
        .lifetime
        .map(|lifetime| {
            lifetime
                .num_microseconds()
                .ok_or_else(|| StoreError::invalid_input("the key's lifetime is too long"))
        })
        .transpose()?;
    let usage_count = i64::try_from(record.usage_count)
        .map_err(|_| StoreError::invalid_input("the usage count is too large to store"))?;
    let allowed_ips: Vec<String> = record.allowed_ips.iter().map(ToString::to_string).collect();
    Ok(Model {
        id: *record.id.as_uuid(),
        digest: record.digest.as_bytes().to_vec(),
        previous_digest: record.previous.map(|p| p.digest.as_bytes().to_vec()),
        previous_valid_until: record.previous.map(|p| micros(p.valid_until)),
        name: record.name.clone(),
        kind: record.kind.as_str().to_owned(),
        owner: record.owner.clone(),
        scopes: json(&record.scopes.to_strings())?,
        hint: record.hint.as_str().to_owned(),
        created_at: micros(record.created_at),
        updated_at: micros(record.updated_at),
        expires_at: record.expires_at.map(micros),
        lifetime_micros,
        last_used_at: record.last_used_at.map(micros),
        last_used_ip: record.last_used_ip.map(|ip| ip.to_string()),
        usage_count,
        active: record.active,
        disabled_by: record.disabled_by.clone(),
        revoked_at: record.revoked_at.map(micros),
        allowed_ips: json(&allowed_ips)?,
        rate_limit: record.rate_limit.map(|limit| i64::from(limit.get())),
        metadata: json(&record.metadata)?,
    })
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| {
        StoreError::invalid_input("a value cannot be written as JSON").with_source(err)
    })
}

/// The record stored in `model`; an unreadable column is an error naming it.
pub(crate) fn from_model(model: Model) -> Result<KeyRecord, StoreError> {
    let id = KeyId::from_uuid(model.id);
    let digest = TokenDigest::from_slice(&model.digest).map_err(|e| corrupt(id, "digest", e))?;
    let previous = match (model.previous_digest, model.previous_valid_until) {
        (Some(bytes), Some(valid_until)) => Some(PreviousSecret {
            digest: TokenDigest::from_slice(&bytes)
                .map_err(|e| corrupt(id, "previous_digest", e))?,
            valid_until,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(
                id,
                "previous_valid_until",
                "previous_digest and previous_valid_until are set together",
            ));
        }
    };
    let kind: KeyKind = model.kind.parse().map_err(|e| corrupt(id, "kind", e))?;
    let scopes: Vec<String> =
        serde_json::from_str(&model.scopes).map_err(|e| corrupt(id, "scopes", e))?;
    let scopes = ScopeSet::parse(scopes).map_err(|e| corrupt(id, "scopes", e))?;
    let allowed_ips: Vec<String> =
        serde_json::from_str(&model.allowed_ips).map_err(|e| corrupt(id, "allowed_ips", e))?;
    let allowed_ips = allowed_ips
        .iter()
        .map(|net| net.parse::<IpNet>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(id, "allowed_ips", e))?;
    let metadata = serde_json::from_str(&model.metadata).map_err(|e| corrupt(id, "metadata", e))?;
    let last_used_ip = model
        .last_used_ip
        .map(|ip| ip.parse::<IpAddr>())
        .transpose()
        .map_err(|e| corrupt(id, "last_used_ip", e))?;
    let usage_count =
        u64::try_from(model.usage_count).map_err(|e| corrupt(id, "usage_count", e))?;
    let rate_limit = model
        .rate_limit
        .map(|limit| {
            u32::try_from(limit)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| corrupt(id, "rate_limit", format!("{limit} is not 1..=u32::MAX")))
        })
        .transpose()?;
    Ok(KeyRecord {
        id,
        name: model.name,
        kind,
        owner: model.owner,
        scopes,
        hint: KeyHint::from_stored(model.hint),
        digest,
        previous,
        created_at: model.created_at,
        updated_at: model.updated_at,
        expires_at: model.expires_at,
        lifetime: model.lifetime_micros.map(TimeDelta::microseconds),
        last_used_at: model.last_used_at,
        last_used_ip,
        usage_count,
        active: model.active,
        disabled_by: model.disabled_by,
        revoked_at: model.revoked_at,
        allowed_ips,
        rate_limit,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::conformance::personal_key;

    #[test]
    fn round_trip_keeps_every_field() {
        let (mut record, _) = personal_key("alice", 0);
        record.previous = Some(PreviousSecret {
            digest: TokenDigest::from_bytes([7; 32]),
            valid_until: record.created_at + TimeDelta::seconds(60),
        });
        record.last_used_ip = Some("2001:db8::1".parse().unwrap());
        record.rate_limit = NonZeroU32::new(u32::MAX);
        record.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];
        let back = from_model(to_model(&record).unwrap()).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn timestamps_are_truncated_to_microseconds() {
        let (mut record, _) = personal_key("alice", 0);
        record.updated_at += TimeDelta::nanoseconds(1_234_567);
        let model = to_model(&record).unwrap();
        assert_eq!(
            model.updated_at - record.created_at,
            TimeDelta::microseconds(1234)
        );
    }

    #[test]
    fn corrupt_columns_are_errors() {
        let (record, _) = personal_key("alice", 0);
        let good = to_model(&record).unwrap();
        let cases: Vec<(&str, Model)> = vec![
            (
                "digest",
                Model {
                    digest: vec![1, 2, 3],
                    ..good.clone()
                },
            ),
            (
                "scopes",
                Model {
                    scopes: "{not json".into(),
                    ..good.clone()
                },
            ),
            (
                "scopes",
                Model {
                    scopes: r#"["Not A Scope"]"#.into(),
                    ..good.clone()
                },
            ),
            (
                "kind",
                Model {
                    kind: "robot".into(),
                    ..good.clone()
                },
            ),
            (
                "allowed_ips",
                Model {
                    allowed_ips: r#"["nope"]"#.into(),
                    ..good.clone()
                },
            ),
            (
                "metadata",
                Model {
                    metadata: String::new(),
                    ..good.clone()
                },
            ),
            (
                "usage_count",
                Model {
                    usage_count: -1,
                    ..good.clone()
                },
            ),
            (
                "rate_limit",
                Model {
                    rate_limit: Some(0),
                    ..good.clone()
                },
            ),
            (
                "last_used_ip",
                Model {
                    last_used_ip: Some("x".into()),
                    ..good.clone()
                },
            ),
            (
                "previous_valid_until",
                Model {
                    previous_digest: Some(vec![0; 32]),
                    ..good.clone()
                },
            ),
        ];
        for (column, model) in cases {
            let err = from_model(model).expect_err(column);
            assert!(err.is_unavailable(), "{column}");
            assert!(
                err.message().contains(column),
                "{column}: {}",
                err.message()
            );
        }
    }
}
