//! An ingest body as sent, read straight from the request bytes: the fields
//! validation looks at, each kept as whatever the client sent (absent,
//! `null`, a string borrowed from the body, or another JSON type), and the
//! names of the keys it does not know.
//!
//! Nothing is judged here: every rule, and every message, is in
//! [`crate::ingest::validate`], which reads these types whether they were
//! deserialized from the body or converted from a [`serde_json::Value`]. This
//! replaces parsing into a `Value` tree first: measured in batch ingest, the
//! tree (a `String` per key and a `BTreeMap` per object, then taken apart by
//! validation) was a third of the request handlers' CPU.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One event item: an object, or anything else (which validation rejects).
// Nearly every item is an object: boxing it would cost an allocation per
// event to save space only on items that are rejected anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Body<'a> {
    /// A JSON object.
    Object(EventBody<'a>),
    /// Not an object.
    NotObject,
}

impl Body<'static> {
    /// The same item from an already parsed value (strings are moved, not
    /// copied).
    pub fn from_value(value: Value) -> Self {
        // A `Value` always deserializes: every visitor below accepts any
        // JSON.
        Body::deserialize(value).unwrap_or(Body::NotObject)
    }
}

/// The keys of an event object; each known key holds the last value sent
/// for it, as a parsed `Value` map would.
#[derive(Debug, Default)]
pub struct EventBody<'a> {
    pub level: Field<'a>,
    pub category: Field<'a>,
    pub event: Field<'a>,
    pub occurred_at: Field<'a>,
    pub actor: ActorField<'a>,
    pub ip_address: Field<'a>,
    pub workflow_id: Field<'a>,
    pub description: Field<'a>,
    pub metadata: MetadataField,
    pub idempotency_key: Field<'a>,
    /// Keys that are none of the above, as sent (possibly repeated), at
    /// most [`MAX_UNKNOWN_KEYS_KEPT`] of them.
    pub other_keys: Vec<Cow<'a, str>>,
    /// How many more unknown keys were sent than are kept.
    pub more_keys: usize,
}

/// Unknown keys kept per object to be named in errors. An object of a
/// million junk keys is one error line saying how many, not a million
/// names in memory and in the answer.
pub const MAX_UNKNOWN_KEYS_KEPT: usize = 16;

fn keep_unknown<'a>(kept: &mut Vec<Cow<'a, str>>, more: &mut usize, key: Cow<'a, str>) {
    if kept.len() < MAX_UNKNOWN_KEYS_KEPT {
        kept.push(key);
    } else {
        *more += 1;
    }
}

/// A scalar field as sent.
#[derive(Debug, Default)]
pub enum Field<'a> {
    /// The key is not in the object.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A string.
    Str(Cow<'a, str>),
    /// A number, boolean, array or object.
    Other,
}

/// `actor` as sent.
#[derive(Debug, Default)]
pub enum ActorField<'a> {
    #[default]
    Absent,
    Null,
    Object(ActorBody<'a>),
    Other,
}

/// The keys of an `actor` object.
#[derive(Debug, Default)]
pub struct ActorBody<'a> {
    pub kind: Field<'a>,
    pub id: Field<'a>,
    pub name: Field<'a>,
    pub email: Field<'a>,
    pub other_keys: Vec<Cow<'a, str>>,
    pub more_keys: usize,
}

/// `metadata` as sent: its entries are kept whole, as they are stored.
///
/// Only what can be stored is built: a value that is an array or an object
/// (refused by validation) is skipped over and kept as an empty one, and past
/// [`super::limits::MAX_METADATA_KEYS`] entries only the number of keys is
/// kept. So the memory of a metadata object is bounded by its accepted
/// size, not by what the client sent.
#[derive(Debug, Default)]
pub enum MetadataField {
    #[default]
    Absent,
    Null,
    Object(BTreeMap<String, Value>),
    /// More keys than accepted: how many were sent.
    TooManyKeys(usize),
    Other,
}

/// A metadata value as far as it can be stored: scalars as sent, arrays and
/// objects skipped (and stood in for by an empty one of their kind).
struct StoredValue(Value);

impl<'de> Deserialize<'de> for StoredValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StoredValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                StoredValue::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(StoredValue(Value::String(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StoredValue(Value::Array(Vec::new())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StoredValue(Value::Object(serde_json::Map::new())))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string that borrows from the body when it holds no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The visitor methods the four types below share: `null` (and an
/// `Option`'s `None`) is `$null`, `Some(x)` is read as `$ty`, and a number,
/// boolean or array is consumed and answered with `$other`. Strings and
/// objects are each type's own.
macro_rules! any_json {
    ($ty:ty, null: $null:expr, other: $other:expr) => {
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            <$ty>::deserialize(d)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            any_json!(Field<'de>, null: Field::Null, other: Field::Other);
        }
        d.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ActorField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ActorField<'de>;
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ActorField::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut a = ActorBody::default();
                while let Some(CowStr(key)) = map.next_key()? {
                    let slot = match &*key {
                        "kind" => &mut a.kind,
                        "id" => &mut a.id,
                        "name" => &mut a.name,
                        "email" => &mut a.email,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            keep_unknown(&mut a.other_keys, &mut a.more_keys, key);
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                Ok(ActorField::Object(a))
            }
            any_json!(ActorField<'de>, null: ActorField::Null, other: ActorField::Other);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for MetadataField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataField;
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MetadataField::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let max = super::limits::MAX_METADATA_KEYS;
                let mut entries = BTreeMap::new();
                let mut overflow = 0usize;
                while let Some(CowStr(key)) = map.next_key()? {
                    let StoredValue(value) = map.next_value()?;
                    if entries.len() < max || entries.contains_key(&*key) {
                        entries.insert(key.into_owned(), value);
                    } else {
                        overflow += 1;
                    }
                }
                Ok(if overflow > 0 {
                    MetadataField::TooManyKeys(entries.len() + overflow)
                } else {
                    MetadataField::Object(entries)
                })
            }
            any_json!(MetadataField, null: MetadataField::Null, other: MetadataField::Other);
        }
        d.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Body<'de>;
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Body::NotObject)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut e = EventBody::default();
                while let Some(CowStr(key)) = map.next_key()? {
                    let slot = match &*key {
                        "level" => &mut e.level,
                        "category" => &mut e.category,
                        "event" => &mut e.event,
                        "occurred_at" => &mut e.occurred_at,
                        "ip_address" => &mut e.ip_address,
                        "workflow_id" => &mut e.workflow_id,
                        "description" => &mut e.description,
                        "idempotency_key" => &mut e.idempotency_key,
                        "actor" => {
                            e.actor = map.next_value()?;
                            continue;
                        }
                        "metadata" => {
                            e.metadata = map.next_value()?;
                            continue;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            keep_unknown(&mut e.other_keys, &mut e.more_keys, key);
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                Ok(Body::Object(e))
            }
            any_json!(Body<'de>, null: Body::NotObject, other: Body::NotObject);
        }
        d.deserialize_any(V)
    }
}

/// A batch body, `{"events": [...]}`, read straight from the bytes. Every
/// other shape is an error whose message says what the shape is; nothing is
/// parsed a second time.
///
/// Items are counted while they are read: the error at item
/// `MAX_BATCH_EVENTS + 1` stops the parse there, so a body of millions of
/// tiny items never becomes millions of parsed items (see [`is_too_many`]).
pub struct Batch<'a> {
    pub events: Vec<Body<'a>>,
}

/// Message of the error that stops a batch at its item
/// `MAX_BATCH_EVENTS + 1`.
const TOO_MANY_EVENTS: &str = "auditlog: too many events in the batch";

/// Whether a batch parse stopped because the batch holds more than
/// [`super::limits::MAX_BATCH_EVENTS`] events (answered `413`, not `400`).
pub fn is_too_many(e: &serde_json::Error) -> bool {
    e.is_data() && e.to_string().starts_with(TOO_MANY_EVENTS)
}

/// The visitor methods of a value that must be an object (or array): every
/// other JSON type is refused with `$msg`.
macro_rules! only_containers {
    ($msg:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom($msg))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom($msg))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom($msg))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom($msg))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom($msg))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom($msg))
        }
    };
}

const BATCH_SHAPE: &str = "the body must be an object {\"events\": [...]}";
const EVENTS_SHAPE: &str = "`events` must be an array of events";

impl<'de: 'a, 'a> Deserialize<'de> for Batch<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Events<'a>(Vec<Body<'a>>);
        impl<'de: 'a, 'a> Deserialize<'de> for Events<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Events<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(EVENTS_SHAPE)
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Self::Value, A::Error> {
                        let max = super::limits::MAX_BATCH_EVENTS;
                        let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max));
                        while let Some(item) = seq.next_element()? {
                            if events.len() == max {
                                return Err(de::Error::custom(TOO_MANY_EVENTS));
                            }
                            events.push(item);
                        }
                        Ok(Events(events))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                        Err(de::Error::custom(EVENTS_SHAPE))
                    }
                    only_containers!(EVENTS_SHAPE);
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Batch<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(BATCH_SHAPE)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut events = None;
                while let Some(CowStr(key)) = map.next_key()? {
                    if key != "events" {
                        return Err(de::Error::custom(format_args!(
                            "unknown field `{}` in the batch; the body is {{\"events\": [...]}}",
                            super::limits::quote(&key)
                        )));
                    }
                    let Events(items) = map.next_value()?;
                    events = Some(items);
                }
                events
                    .map(|events| Batch { events })
                    .ok_or_else(|| de::Error::custom("the body has no `events` array"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(BATCH_SHAPE))
            }
            only_containers!(BATCH_SHAPE);
        }
        d.deserialize_any(V)
    }
}
