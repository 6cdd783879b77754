//! A serde `Deserializer` over a [`Tree`]: every error carries the field
//! path (`spec.ports[1].container`) and the line and column of the node it
//! concerns.
//!
//! Scalars follow YAML 1.2's core schema: a plain `~`/`null`/empty is null,
//! `true`/`false` booleans, `[-+]?[0-9]+` (and `0x`/`0o`) integers, the usual
//! floats; quoted, block and tagged scalars are strings. A string field
//! accepts any scalar as written (`tag: 1.10` is `"1.10"`, `answer: no` is
//! `"no"`), so typed fields never suffer YAML 1.1's surprises.
//!
//! Null where a list or mapping is expected counts as empty (a key whose
//! items are all commented out).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Unexpected, Visitor};

use super::tree::{is_null_text, Data, Pos, Tree};
use crate::resource::validate::{push_index, push_key};

/// Most nodes one document may expand to through aliases.
const MAX_VISITS: usize = 1_000_000;

/// A deserialization error with where it happened.
#[derive(Debug)]
pub(crate) struct DeError {
    pub message: String,
    pub path: Option<String>,
    pub pos: Option<Pos>,
    /// Set by `missing_field`: the field is appended to the path of the map.
    missing: Option<&'static str>,
}

impl DeError {
    fn msg(message: impl Into<String>) -> Self {
        DeError {
            message: message.into(),
            path: None,
            pos: None,
            missing: None,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::msg(msg.to_string())
    }
    fn missing_field(field: &'static str) -> Self {
        DeError {
            missing: Some(field),
            ..DeError::msg(format!("missing field `{field}`"))
        }
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::msg(unknown_field(field, expected))
    }
}

/// `unknown field `imagee` (did you mean `image`?), expected one of image, command, ...`
fn unknown_field(field: &str, expected: &[&str]) -> String {
    if field == "<<" {
        return "merge keys (<<) are not supported: repeat the fields instead".into();
    }
    let closest = expected
        .iter()
        .map(|e| (edit_distance(field, e), *e))
        .filter(|(d, e)| *d <= 2.max(e.len() / 4))
        .min();
    let hint = closest.map_or(String::new(), |(_, e)| format!(" (did you mean `{e}`?)"));
    if expected.is_empty() {
        format!("unknown field `{field}`{hint}: no fields are allowed here")
    } else {
        format!(
            "unknown field `{field}`{hint}, expected one of {}",
            expected.join(", ")
        )
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Shared by every deserializer of one document.
pub(crate) struct Ctx<'t, 'a> {
    pub tree: &'t Tree<'a>,
    pub max_depth: usize,
    visits: Cell<usize>,
}

impl<'t, 'a> Ctx<'t, 'a> {
    pub fn new(tree: &'t Tree<'a>, max_depth: usize) -> Self {
        Ctx {
            tree,
            max_depth,
            visits: Cell::new(0),
        }
    }
}

/// The field path as a linked list on the stack: built into a string only
/// for an error.
#[derive(Clone, Copy)]
enum Seg<'p> {
    Root,
    Key(&'p str),
    Index(usize),
}

#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for s in segs.iter().rev() {
            match s {
                Seg::Root => {}
                Seg::Key(k) => push_key(&mut out, k),
                Seg::Index(i) => push_index(&mut out, *i),
            }
        }
        out
    }
}

static ROOT: Path<'static> = Path {
    parent: None,
    seg: Seg::Root,
};

/// Deserializes the root of `cx.tree` into `T`.
pub(crate) fn from_tree<'de, T: de::Deserialize<'de>>(cx: &Ctx<'_, 'de>) -> Result<T, DeError> {
    let Some(root) = cx.tree.root else {
        return Err(DeError::msg("empty document"));
    };
    T::deserialize(De {
        cx,
        node: root,
        key_pos: None,
        path: &ROOT,
        depth: 0,
    })
}

struct De<'c, 't, 'a, 'p> {
    cx: &'c Ctx<'t, 'a>,
    node: usize,
    /// Position of the key this node is the value of.
    key_pos: Option<Pos>,
    path: &'p Path<'p>,
    depth: usize,
}

impl Clone for De<'_, '_, '_, '_> {
    fn clone(&self) -> Self {
        *self
    }
}
impl Copy for De<'_, '_, '_, '_> {}

/// A scalar resolved by the core schema.
enum Resolved<'s> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'s str),
}

fn resolve(text: &str, plain: bool) -> Resolved<'_> {
    if !plain {
        return Resolved::Str(text);
    }
    if is_null_text(text) {
        return Resolved::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = digits.parse::<i128>() {
            return Resolved::Int(if neg { -n } else { n });
        }
        return Resolved::Str(text);
    }
    let radix = if let Some(hex) = text.strip_prefix("0x") {
        Some((hex, 16))
    } else {
        text.strip_prefix("0o").map(|oct| (oct, 8))
    };
    if let Some((body, radix)) = radix {
        // from_str_radix would accept a sign: the body must be digits only.
        if !body.is_empty() && body.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(n) = i128::from_str_radix(body, radix) {
                return Resolved::Int(n);
            }
        }
    }
    if is_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Resolved::Float(f);
        }
    }
    Resolved::Str(text)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already removed).
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

impl<'c, 't, 'a, 'p> De<'c, 't, 'a, 'p> {
    fn data(&self) -> Option<&'t Data<'a>> {
        self.cx.tree.data(self.node)
    }

    fn pos(&self) -> Pos {
        self.cx.tree.pos(self.node)
    }

    /// Gives an error without a position this node's position and path.
    fn attach(&self, mut e: DeError) -> DeError {
        if e.pos.is_none() {
            let mut path = self.path.render();
            if let Some(field) = e.missing.take() {
                // Point at the key introducing the mapping that lacks the field.
                e.pos = Some(self.key_pos.unwrap_or(self.pos()));
                push_key(&mut path, field);
            } else {
                e.pos = Some(self.pos());
            }
            e.path = Some(path);
        }
        e
    }

    fn enter(&self) -> Result<(), DeError> {
        let v = self.cx.visits.get() + 1;
        self.cx.visits.set(v);
        if v > MAX_VISITS {
            return Err(DeError::msg(format!(
                "the document expands to more than {MAX_VISITS} values (through aliases)"
            )));
        }
        if self.depth > self.cx.max_depth {
            return Err(DeError::msg(format!(
                "nested more than {} levels deep (through aliases)",
                self.cx.max_depth
            )));
        }
        Ok(())
    }

    fn unexpected(&self) -> Unexpected<'t> {
        match self.data() {
            Some(Data::Scalar(t, plain)) => match resolve(t, *plain) {
                Resolved::Null => Unexpected::Other("null"),
                Resolved::Bool(b) => Unexpected::Bool(b),
                Resolved::Int(i) => match i64::try_from(i) {
                    Ok(n) if n < 0 => Unexpected::Signed(n),
                    _ => {
                        u64::try_from(i).map_or(Unexpected::Other("integer"), Unexpected::Unsigned)
                    }
                },
                Resolved::Float(f) => Unexpected::Float(f),
                Resolved::Str(s) => Unexpected::Str(s),
            },
            Some(Data::Seq(_)) => Unexpected::Other("a list"),
            Some(Data::Map(_)) => Unexpected::Other("a mapping"),
            _ => Unexpected::Other("an alias"),
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.data(), Some(Data::Scalar(t, true)) if is_null_text(t))
    }

    /// Hands a scalar to the visitor as the type the core schema gives it.
    fn scalar<V: Visitor<'a>>(self, visitor: V, null_ok: bool) -> Result<V::Value, DeError> {
        let Some(Data::Scalar(text, plain)) = self.data() else {
            return Err(de::Error::invalid_type(self.unexpected(), &visitor));
        };
        match resolve(text, *plain) {
            Resolved::Null if null_ok => visitor.visit_unit(),
            Resolved::Null => Err(de::Error::invalid_type(Unexpected::Other("null"), &visitor)),
            Resolved::Bool(b) => visitor.visit_bool(b),
            Resolved::Int(i) => match (u64::try_from(i), i64::try_from(i)) {
                (Ok(u), _) => visitor.visit_u64(u),
                (_, Ok(s)) => visitor.visit_i64(s),
                _ => visitor.visit_i128(i),
            },
            Resolved::Float(f) => visitor.visit_f64(f),
            Resolved::Str(_) => self.string(visitor),
        }
    }

    /// Hands any scalar to the visitor as a string, as written.
    fn string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.data() {
            Some(Data::Scalar(t, plain)) if *plain && is_null_text(t) => {
                Err(de::Error::invalid_type(Unexpected::Other("null"), &visitor))
            }
            Some(Data::Scalar(std::borrow::Cow::Borrowed(s), _)) => visitor.visit_borrowed_str(s),
            Some(Data::Scalar(t, _)) => visitor.visit_str(t),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.data() {
            Some(Data::Seq(items)) => visitor.visit_seq(SeqAccess {
                de: self,
                items,
                index: 0,
            }),
            _ if self.is_null() => visitor.visit_seq(SeqAccess {
                de: self,
                items: &[],
                index: 0,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &"a list")),
        }
    }

    fn map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map_of(visitor, None)
    }

    /// A mapping; with `fields`, every key must be one of them.
    fn map_of<V: Visitor<'a>>(
        self,
        visitor: V,
        fields: Option<&'static [&'static str]>,
    ) -> Result<V::Value, DeError> {
        match self.data() {
            Some(Data::Map(entries)) => {
                self.check_duplicates(entries)?;
                visitor.visit_map(MapAccess {
                    de: self,
                    entries,
                    index: 0,
                    fields,
                })
            }
            _ if self.is_null() => visitor.visit_map(MapAccess {
                de: self,
                entries: &[],
                index: 0,
                fields,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &"a mapping")),
        }
    }

    fn check_duplicates(&self, entries: &[(usize, usize)]) -> Result<(), DeError> {
        let tree = self.cx.tree;
        let key = |i: usize| tree.text(entries[i].0);
        let dup = if entries.len() <= 16 {
            (1..entries.len()).find(|&j| key(j).is_some() && (0..j).any(|i| key(i) == key(j)))
        } else {
            let mut seen = std::collections::HashSet::new();
            (0..entries.len()).find(|&j| key(j).is_some_and(|k| !seen.insert(k)))
        };
        let Some(j) = dup else { return Ok(()) };
        let k = key(j).unwrap_or_default();
        let mut path = self.path.render();
        push_key(&mut path, k);
        Err(DeError {
            message: format!("duplicate key `{k}`"),
            path: Some(path),
            pos: Some(tree.pos(entries[j].0)),
            missing: None,
        })
    }
}

macro_rules! scalar_methods {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.enter().map_err(|e| self.attach(e))?;
            self.scalar(visitor, false).map_err(|e| self.attach(e))
        }
    )*};
}

macro_rules! string_methods {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.enter().map_err(|e| self.attach(e))?;
            self.string(visitor).map_err(|e| self.attach(e))
        }
    )*};
}

impl<'a> Deserializer<'a> for De<'_, '_, 'a, '_> {
    type Error = DeError;

    scalar_methods!(
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64
    );
    string_methods!(
        deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_identifier
    );

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.enter().map_err(|e| self.attach(e))?;
        let r = match self.data() {
            Some(Data::Seq(_)) => self.seq(visitor),
            Some(Data::Map(_)) => self.map(visitor),
            _ => self.scalar(visitor, true),
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            visitor.visit_none().map_err(|e| self.attach(e))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            visitor.visit_unit().map_err(|e| self.attach(e))
        } else {
            Err(self.attach(de::Error::invalid_type(self.unexpected(), &visitor)))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.enter().map_err(|e| self.attach(e))?;
        self.seq(visitor).map_err(|e| self.attach(e))
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.enter().map_err(|e| self.attach(e))?;
        self.map(visitor).map_err(|e| self.attach(e))
    }

    /// Structs are strict here, and only here: a key that is not one of
    /// `fields` is an error at that key. The resource types themselves accept
    /// unknown fields, so documents in etcd written by a newer berth still
    /// decode in an older one (see `resource`'s module docs).
    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.enter().map_err(|e| self.attach(e))?;
        self.map_of(visitor, Some(fields))
            .map_err(|e| self.attach(e))
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.enter().map_err(|e| self.attach(e))?;
        let r = match self.data() {
            Some(Data::Scalar(t, plain)) if !(*plain && is_null_text(t)) => {
                visitor.visit_enum(Enum {
                    de: self,
                    variant: t,
                    value: None,
                })
            }
            Some(Data::Map(entries)) if entries.len() == 1 => match self.cx.tree.text(entries[0].0)
            {
                Some(variant) => visitor.visit_enum(Enum {
                    de: self,
                    variant,
                    value: Some(entries[0]),
                }),
                None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
            },
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'c, 't, 'a, 'p> {
    de: De<'c, 't, 'a, 'p>,
    items: &'t [usize],
    index: usize,
}

impl<'a> de::SeqAccess<'a> for SeqAccess<'_, '_, 'a, '_> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(&node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let path = Path {
            parent: Some(self.de.path),
            seg: Seg::Index(self.index),
        };
        self.index += 1;
        seed.deserialize(De {
            cx: self.de.cx,
            node,
            key_pos: None,
            path: &path,
            depth: self.de.depth + 1,
        })
        .map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct MapAccess<'c, 't, 'a, 'p> {
    de: De<'c, 't, 'a, 'p>,
    entries: &'t [(usize, usize)],
    index: usize,
    /// A struct's fields: any other key is an error.
    fields: Option<&'static [&'static str]>,
}

impl<'a> de::MapAccess<'a> for MapAccess<'_, '_, 'a, '_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(&(key, _)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        let path = Path {
            parent: Some(self.de.path),
            seg: Seg::Key(self.de.cx.tree.text(key).unwrap_or("?")),
        };
        let key_de = De {
            cx: self.de.cx,
            node: key,
            key_pos: None,
            path: &path,
            depth: self.de.depth + 1,
        };
        if let (Some(fields), Some(text)) = (self.fields, self.de.cx.tree.text(key)) {
            if !fields.contains(&text) {
                return Err(key_de.attach(de::Error::unknown_field(text, fields)));
            }
        }
        seed.deserialize(key_de).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(&(key, value)) = self.entries.get(self.index) else {
            return Err(DeError::msg("internal error: value without key"));
        };
        self.index += 1;
        let path = Path {
            parent: Some(self.de.path),
            seg: Seg::Key(self.de.cx.tree.text(key).unwrap_or("?")),
        };
        seed.deserialize(De {
            cx: self.de.cx,
            node: value,
            key_pos: Some(self.de.cx.tree.pos(key)),
            path: &path,
            depth: self.de.depth + 1,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}

struct Enum<'c, 't, 'a, 'p> {
    de: De<'c, 't, 'a, 'p>,
    variant: &'t str,
    /// For `{variant: value}`: the key and value nodes.
    value: Option<(usize, usize)>,
}

impl<'a, 'c, 't, 'p> de::EnumAccess<'a> for Enum<'c, 't, 'a, 'p> {
    type Error = DeError;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<(S::Value, Self), DeError> {
        let de: de::value::StrDeserializer<'_, DeError> = self.variant.into_deserializer();
        let v = seed.deserialize(de)?;
        Ok((v, self))
    }
}

impl<'a> de::VariantAccess<'a> for Enum<'_, '_, 'a, '_> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some((_, v)) if matches!(self.de.cx.tree.data(v), Some(Data::Scalar(t, true)) if is_null_text(t)) => {
                Ok(())
            }
            Some(_) => Err(DeError::msg(format!("`{}` takes no value", self.variant))),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        let Some((key, value)) = self.value else {
            return Err(DeError::msg(format!("`{}` needs a value", self.variant)));
        };
        let path = Path {
            parent: Some(self.de.path),
            seg: Seg::Key(self.variant),
        };
        seed.deserialize(De {
            cx: self.de.cx,
            node: value,
            key_pos: Some(self.de.cx.tree.pos(key)),
            path: &path,
            depth: self.de.depth + 1,
        })
    }
    fn tuple_variant<V: Visitor<'a>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.newtype_variant_seed(SeqSeed(visitor))
    }
    fn struct_variant<V: Visitor<'a>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.newtype_variant_seed(MapSeed(visitor))
    }
}

struct SeqSeed<V>(V);
impl<'a, V: Visitor<'a>> DeserializeSeed<'a> for SeqSeed<V> {
    type Value = V::Value;
    fn deserialize<D: Deserializer<'a>>(self, d: D) -> Result<V::Value, D::Error> {
        d.deserialize_seq(self.0)
    }
}

struct MapSeed<V>(V);
impl<'a, V: Visitor<'a>> DeserializeSeed<'a> for MapSeed<V> {
    type Value = V::Value;
    fn deserialize<D: Deserializer<'a>>(self, d: D) -> Result<V::Value, D::Error> {
        d.deserialize_map(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        let cases: &[(&str, &str)] = &[
            ("~", "null"),
            ("", "null"),
            ("True", "true"),
            ("12", "12"),
            ("-12", "-12"),
            ("+12", "12"),
            ("0x1F", "31"),
            ("0o17", "15"),
            ("1.5", "1.5"),
            ("-.5e3", "-500.0"),
            ("1e3", "1000.0"),
            ("yes", "\"yes\""),
            ("1.10.2", "\"1.10.2\""),
            ("inf", "\"inf\""),
            ("1_000", "\"1_000\""),
            ("0x", "\"0x\""),
            ("e3", "\"e3\""),
            ("0x-1", "\"0x-1\""),
            ("0o9", "\"0o9\""),
            ("aé", "\"aé\""),
            ("é1", "\"é1\""),
        ];
        for (text, want) in cases {
            let got = match resolve(text, true) {
                Resolved::Null => "null".to_string(),
                Resolved::Bool(b) => b.to_string(),
                Resolved::Int(i) => i.to_string(),
                Resolved::Float(f) => format!("{f:?}"),
                Resolved::Str(s) => format!("{s:?}"),
            };
            assert_eq!(&got, want, "{text}");
        }
        assert!(matches!(resolve("12", false), Resolved::Str("12")));
    }
}
