//! The configuration document as a tree, and a serde `Deserializer` over it that names the path
//! of the first error. Why: wrapping every configuration type's deserialization in
//! `serde_path_to_error` instantiated its wrappers and serde_json's parser once per type, a large
//! share of each module. Here the parser runs for [`Node`] only, and the typed pass is one small
//! deserializer.
//!
//! The typed pass reproduces what serde_json's reader gives a visitor (same visit calls, same
//! messages) and the paths `serde_path_to_error` reported: the first (deepest) path at which an
//! error surfaced.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use std::cell::RefCell;
use std::fmt;

/// A JSON value as serde_json's reader visits it: objects keep their members in document order,
/// duplicates included (a typed parse refuses a duplicate field).
pub enum Node {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// Parses one JSON value. A syntax error comes with the path `serde_path_to_error` gave it when
/// it wrapped the typed parse: the deepest value being read, `?` for a member whose name could
/// not be read, the container for a broken separator.
pub fn parse<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Node, (String, D::Error)> {
    let failed_at = RefCell::new(None);
    let seed = NodeSeed {
        chain: &Chain::Root,
        failed_at: &failed_at,
    };
    seed.deserialize(deserializer)
        .map_err(|e| (failed_at.into_inner().unwrap_or_default(), e))
}

/// The first path recorded is the deepest one: errors are recorded on their way out.
fn record<E>(failed_at: &RefCell<Option<String>>, chain: &Chain<'_>, e: E) -> E {
    let mut failed_at = failed_at.borrow_mut();
    if failed_at.is_none() {
        *failed_at = Some(chain.render());
    }
    e
}

struct NodeSeed<'c> {
    chain: &'c Chain<'c>,
    failed_at: &'c RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        let (chain, failed_at) = (self.chain, self.failed_at);
        deserializer
            .deserialize_any(self)
            .map_err(|e| record(failed_at, chain, e))
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        loop {
            let chain = Chain::Seq(self.chain, items.len());
            let seed = NodeSeed {
                chain: &chain,
                failed_at: self.failed_at,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Node::Seq(items)),
                // A broken separator: the list's own path.
                Err(e) => return Err(record(self.failed_at, self.chain, e)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        loop {
            let key = match map.next_key::<String>() {
                Ok(Some(key)) => key,
                Ok(None) => return Ok(Node::Map(entries)),
                Err(e) => return Err(record(self.failed_at, &Chain::Key(self.chain, "?"), e)),
            };
            let chain = Chain::Key(self.chain, &key);
            let seed = NodeSeed {
                chain: &chain,
                failed_at: self.failed_at,
            };
            let value = map
                .next_value_seed(seed)
                .map_err(|e| record(self.failed_at, self.chain, e))?;
            entries.push((key, value));
        }
    }
}

/// Where a value sits, as a chain of parents (only rendered when an error needs it).
#[derive(Clone, Copy)]
pub enum Chain<'a> {
    Root,
    Seq(&'a Chain<'a>, usize),
    Key(&'a Chain<'a>, &'a str),
}

impl Chain<'_> {
    /// `serde_path_to_error`'s rendering: `.` for the document, keys joined by `.`, indexes as
    /// `[i]`.
    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut chain = self;
        loop {
            match chain {
                Chain::Root => break,
                Chain::Seq(parent, index) => {
                    segments.push(format!("[{index}]"));
                    chain = parent;
                }
                Chain::Key(parent, key) => {
                    segments.push(format!(".{key}"));
                    chain = parent;
                }
            }
        }
        if segments.is_empty() {
            return ".".to_string();
        }
        let mut path: String = segments.into_iter().rev().collect();
        if path.starts_with('.') {
            path.remove(0);
        }
        path
    }
}

/// A refusal of the typed pass: the reason as serde_json would word it, and the path where it
/// first surfaced.
#[derive(Debug)]
pub struct Error {
    pub reason: String,
    pub field: Option<String>,
}

impl Error {
    fn at(mut self, chain: &Chain<'_>) -> Self {
        if self.field.is_none() {
            self.field = Some(chain.render());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            reason: msg.to_string(),
            field: None,
        }
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: {}, expected {exp}",
            JsonUnexpected(unexp)
        ))
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {}, expected {exp}",
            JsonUnexpected(unexp)
        ))
    }
    /// serde's wording, except for the fields that select workloads in an Istio resource: a
    /// pasted spec that still has them is told where they belong.
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        if WORKLOAD_SELECTION.contains(&field) {
            return Self::custom(format_args!(
                "unknown field `{field}`: pluginConfig selects no workloads; select them with the \
                 WasmPlugin's own `selector` or `targetRefs`"
            ));
        }
        let quoted: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
        match quoted.as_slice() {
            [] => Self::custom(format_args!("unknown field `{field}`, there are no fields")),
            [one] => Self::custom(format_args!("unknown field `{field}`, expected {one}")),
            [a, b] => Self::custom(format_args!("unknown field `{field}`, expected {a} or {b}")),
            all => Self::custom(format_args!(
                "unknown field `{field}`, expected one of {}",
                all.join(", ")
            )),
        }
    }
}

/// The fields of Istio's policies that pick the workloads, which the `WasmPlugin` does instead.
const WORKLOAD_SELECTION: [&str; 3] = ["selector", "targetRef", "targetRefs"];

/// serde_json's wording of an unexpected value, written out so that serde's own `Unexpected`
/// display (and with it core's float formatting) stays out of the module.
struct JsonUnexpected<'a>(Unexpected<'a>);

impl fmt::Display for JsonUnexpected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(i) => write!(f, "integer `{i}`"),
            Unexpected::Signed(i) => write!(f, "integer `{i}`"),
            Unexpected::Float(v) => {
                write!(f, "floating point `{}`", zmij::Buffer::new().format(v))
            }
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string {s:?}"),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

/// serde_json's message for a value where none can start ("expected value").
fn expected_value() -> Error {
    de::Error::custom("expected value")
}

impl Node {
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Null => Unexpected::Unit,
            Node::Bool(b) => Unexpected::Bool(*b),
            Node::U64(i) => Unexpected::Unsigned(*i),
            Node::I64(i) => Unexpected::Signed(*i),
            Node::F64(v) => Unexpected::Float(*v),
            Node::Str(s) => Unexpected::Str(s),
            Node::Seq(_) => Unexpected::Seq,
            Node::Map(_) => Unexpected::Map,
        }
    }

    fn invalid_type(&self, exp: &dyn de::Expected) -> Error {
        de::Error::invalid_type(self.unexpected(), exp)
    }
}

/// Deserializes one node; every error leaving it carries its path (unless a deeper one did).
pub struct NodeDe<'de, 'c> {
    pub node: &'de Node,
    pub chain: &'c Chain<'c>,
}

impl<'de> NodeDe<'de, '_> {
    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::U64(i) => visitor.visit_u64(*i),
            Node::I64(i) => visitor.visit_i64(*i),
            Node::F64(v) => visitor.visit_f64(*v),
            Node::Str(s) => visitor.visit_borrowed_str(s),
            Node::Seq(items) => self.seq(items, visitor),
            Node::Map(entries) => self.map(entries, visitor),
        }
    }

    fn seq<V: Visitor<'de>>(&self, items: &'de [Node], visitor: V) -> Result<V::Value, Error> {
        let mut access = Items {
            items: items.iter(),
            index: 0,
            chain: self.chain,
        };
        let value = visitor.visit_seq(&mut access)?;
        // serde_json: elements left unread by the visitor.
        match access.items.len() {
            0 => Ok(value),
            _ => Err(de::Error::custom("trailing characters")),
        }
    }

    fn map<V: Visitor<'de>>(
        &self,
        entries: &'de [(String, Node)],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = Entries {
            entries: entries.iter(),
            value: None,
            chain: self.chain,
        };
        let value = visitor.visit_map(&mut access)?;
        match access.entries.len() {
            0 => Ok(value),
            _ => Err(de::Error::custom("trailing comma")),
        }
    }

    fn number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::U64(i) => visitor.visit_u64(*i),
            Node::I64(i) => visitor.visit_i64(*i),
            Node::F64(v) => visitor.visit_f64(*v),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Str(s) => visitor.visit_borrowed_str(s),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn sequence<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Seq(items) => self.seq(items, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn enumeration<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Str(variant) => visitor.visit_enum(Variant {
                name: variant,
                content: None,
                chain: self.chain,
            }),
            // serde_json reads `{"Variant": content}` and wants the object closed after it.
            Node::Map(entries) => match entries.as_slice() {
                [] => Err(expected_value()),
                [(name, content), rest @ ..] => {
                    let value = visitor.visit_enum(Variant {
                        name,
                        content: Some(content),
                        chain: self.chain,
                    })?;
                    match rest {
                        [] => Ok(value),
                        _ => Err(expected_value()),
                    }
                }
            },
            _ => Err(expected_value()),
        }
    }
}

macro_rules! tracked {
    ($($method:ident => $body:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let chain = self.chain;
            self.$body(visitor).map_err(|e| e.at(chain))
        })*
    };
}

impl<'de> Deserializer<'de> for NodeDe<'de, '_> {
    type Error = Error;

    tracked! {
        deserialize_any => any,
        deserialize_i8 => number, deserialize_i16 => number, deserialize_i32 => number,
        deserialize_i64 => number, deserialize_u8 => number, deserialize_u16 => number,
        deserialize_u32 => number, deserialize_u64 => number, deserialize_f32 => number,
        deserialize_f64 => number,
        deserialize_char => string, deserialize_str => string, deserialize_string => string,
        deserialize_identifier => string,
        deserialize_seq => sequence,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Bool(b) => visitor.visit_bool(*b),
            other => Err(other.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.chain))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Str(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            Node::Seq(items) => self.seq(items, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.chain))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let chain = self.chain;
        match self.node {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(chain))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            other => Err(other.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.chain))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let chain = self.chain;
        visitor.visit_newtype_struct(self).map_err(|e| e.at(chain))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Map(entries) => self.map(entries, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(self.chain))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // A struct may also be given as an array, by position, as serde_json reads it.
        match self.node {
            Node::Seq(items) => self.seq(items, visitor).map_err(|e| e.at(self.chain)),
            _ => self.deserialize_map(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let chain = self.chain;
        self.enumeration(visitor).map_err(|e| e.at(chain))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit::<Error>().map_err(|e| e.at(self.chain))
    }
}

struct Items<'de, 'c> {
    items: std::slice::Iter<'de, Node>,
    index: usize,
    chain: &'c Chain<'c>,
}

impl<'de> SeqAccess<'de> for &mut Items<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let chain = Chain::Seq(self.chain, self.index);
        self.index += 1;
        seed.deserialize(NodeDe {
            node,
            chain: &chain,
        })
        .map(Some)
        .map_err(|e| e.at(&chain))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'de, 'c> {
    entries: std::slice::Iter<'de, (String, Node)>,
    value: Option<(&'de str, &'de Node)>,
    chain: &'c Chain<'c>,
}

impl<'de> MapAccess<'de> for &mut Entries<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize(Key(key))
            .map(Some)
            .map_err(|e| e.at(&Chain::Key(self.chain, key)))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, node)) = self.value.take() else {
            return Err(de::Error::custom("value is missing"));
        };
        let chain = Chain::Key(self.chain, key);
        seed.deserialize(NodeDe {
            node,
            chain: &chain,
        })
        .map_err(|e| e.at(&chain))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A member name or an enum variant: a string, as serde_json's key reader gives it (its errors
/// take the path of the member or of the enum, set by the caller).
struct Key<'de>(&'de str);

impl<'de> Deserializer<'de> for Key<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Variant<'de, 'c> {
    name: &'de str,
    /// The content of the `{"Variant": content}` form.
    content: Option<&'de Node>,
    chain: &'c Chain<'c>,
}

impl<'de, 'c> EnumAccess<'de> for Variant<'de, 'c> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let value = seed.deserialize(Key(self.name))?;
        Ok((value, self))
    }
}

impl<'de> Variant<'de, '_> {
    /// The content's deserializer, at the variant's path (`serde_path_to_error` names it).
    fn content<T>(
        &self,
        expected: &'static str,
        with: impl FnOnce(NodeDe<'de, '_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.content {
            Some(node) => {
                let chain = Chain::Key(self.chain, self.name);
                with(NodeDe {
                    node,
                    chain: &chain,
                })
                .map_err(|e| e.at(&chain))
            }
            // serde_json: a variant given as a plain string has no content.
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &expected)),
        }
    }
}

impl<'de> VariantAccess<'de> for Variant<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.content {
            None => Ok(()),
            Some(_) => self.content("unit", |de| de::Deserialize::deserialize(de)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        self.content("newtype variant", |de| seed.deserialize(de))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.content("tuple variant", |de| de.deserialize_seq(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.content("struct variant", |de| {
            de.deserialize_struct("", &[], visitor)
        })
    }
}
