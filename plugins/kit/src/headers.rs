//! A header map as proxy-wasm hands it over, read in place. The host serializes a map into one
//! buffer (the pair count, each name and value size, then each name and value with a NUL after
//! it); the SDK copies every name into a `String` and every value into a `Vec`, two allocations
//! per header on every request. This map keeps the buffer and the positions in it: no copy, and
//! no UTF-8 check of a name unless it is read as text.

use std::borrow::Cow;
use std::cell::OnceCell;

/// Every header of a map, each value of a repeated header as its own pair, in the order received.
/// Two maps are equal when they hold the same pairs in the same order, however they are stored.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    /// The host's buffer itself; a pair a filter sets is added at its end.
    bytes: Vec<u8>,
    /// Per pair, where its name and its value are in `bytes`.
    pairs: Vec<(Span, Span)>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// A header value as text: in place when it is UTF-8 (the common case, checked a word at a
/// time), lossily otherwise (obs-text a client may send), so it never panics.
pub fn text(value: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value),
    }
}

/// A map's values read as text, for a plugin's view of one request: a UTF-8 value in place, any
/// other rendered once by the plugin's `render` (lossily, or escaped so distinct values stay
/// distinct) and kept for the view's life.
#[derive(Debug, Clone)]
pub struct HeaderTexts<'a> {
    map: Cow<'a, HeaderMap>,
    /// One cell per pair of `map`, filled when that pair's value is read and is not UTF-8.
    rendered: Vec<OnceCell<String>>,
    render: fn(&[u8]) -> String,
}

impl<'a> HeaderTexts<'a> {
    pub fn new(map: Cow<'a, HeaderMap>, render: fn(&[u8]) -> String) -> Self {
        let rendered = std::iter::repeat_with(OnceCell::new)
            .take(map.len())
            .collect();
        Self {
            map,
            rendered,
            render,
        }
    }

    /// Every value of `name`, in order.
    pub fn values<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s str> + use<'s, 'n, 'a> {
        self.map
            .values_of(name)
            .map(|(index, value)| self.text(index, value))
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        let (index, value) = self.map.values_of(name).next()?;
        Some(self.text(index, value))
    }

    /// Whether the map is borrowed, not a copy.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.map, Cow::Borrowed(_))
    }

    fn text<'s>(&'s self, index: usize, value: &'s [u8]) -> &'s str {
        match std::str::from_utf8(value) {
            Ok(text) => text,
            Err(_) => self
                .rendered
                .get(index)
                .map_or("", |rendered| rendered.get_or_init(|| (self.render)(value))),
        }
    }
}

/// A serialized map whose sizes do not fit its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedMap;

fn read_u32(bytes: &[u8], at: usize) -> Result<usize, MalformedMap> {
    let word = bytes.get(at..at + 4).ok_or(MalformedMap)?;
    let word: [u8; 4] = word.try_into().map_err(|_| MalformedMap)?;
    usize::try_from(u32::from_le_bytes(word)).map_err(|_| MalformedMap)
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderMap {}

impl HeaderMap {
    /// Reads proxy-wasm's serialization of a map, keeping `serialized` as the storage.
    pub fn parse(serialized: Vec<u8>) -> Result<Self, MalformedMap> {
        if serialized.is_empty() {
            return Ok(Self::default());
        }
        let count = read_u32(&serialized, 0)?;
        // Each pair takes at least its two sizes and two NULs: a count beyond that is a lie, and
        // would reserve memory for nothing.
        if count > serialized.len() / 10 {
            return Err(MalformedMap);
        }
        let mut pairs = Vec::with_capacity(count);
        let mut at = 4 + count * 8;
        for i in 0..count {
            let name_size = read_u32(&serialized, 4 + i * 8)?;
            let value_size = read_u32(&serialized, 8 + i * 8)?;
            let name_end = at.checked_add(name_size).ok_or(MalformedMap)?;
            let value_start = name_end.checked_add(1).ok_or(MalformedMap)?;
            let value_end = value_start.checked_add(value_size).ok_or(MalformedMap)?;
            // The value and the NUL after it.
            if value_end >= serialized.len() {
                return Err(MalformedMap);
            }
            pairs.push((
                Span {
                    start: at,
                    end: name_end,
                },
                Span {
                    start: value_start,
                    end: value_end,
                },
            ));
            at = value_end + 1;
        }
        Ok(Self {
            bytes: serialized,
            pairs,
        })
    }

    /// A map of these pairs, in this order.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut map = Self::default();
        for (name, value) in pairs {
            map.push(name.as_ref(), value.as_ref());
        }
        map
    }

    /// Every pair, in order: name and value. Envoy's codecs let no name through that is not a
    /// token, so a name is UTF-8; one that is not would read as U+FFFD, matching nothing.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.pairs
            .iter()
            .map(|(name, value)| self.pair(*name, *value))
    }

    fn pair(&self, name: Span, value: Span) -> (&str, &[u8]) {
        let name = self.span(name);
        (
            std::str::from_utf8(name).unwrap_or("\u{fffd}"),
            self.span(value),
        )
    }

    fn span(&self, span: Span) -> &[u8] {
        self.bytes.get(span.start..span.end).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every value of `name`, in order, with the index of its pair in [`HeaderMap::iter`].
    pub fn values_of<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = (usize, &'s [u8])> + use<'s, 'n> {
        self.pairs
            .iter()
            .enumerate()
            .filter(move |(_, (key, _))| has_name(&self.bytes, *key, name))
            .map(|(index, (_, value))| (index, self.span(*value)))
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(key, _)| has_name(&self.bytes, *key, name))
            .map(|(_, value)| self.span(*value))
    }

    /// Adds a pair at the end.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let name = self.add(name.as_bytes());
        let value = self.add(value);
        self.pairs.push((name, value));
    }

    /// Sets `name` to `value` as the host's replace does: in place of its first value, its other
    /// values dropped; added at the end when absent.
    pub fn set(&mut self, name: &str, value: &[u8]) {
        let Some(first) = self
            .pairs
            .iter()
            .position(|(key, _)| has_name(&self.bytes, *key, name))
        else {
            self.push(name, value);
            return;
        };
        let value = self.add(value);
        if let Some(pair) = self.pairs.get_mut(first) {
            pair.1 = value;
        }
        let mut index = 0;
        let bytes = &self.bytes;
        self.pairs.retain(|(key, _)| {
            let keep = index == first || !has_name(bytes, *key, name);
            index += 1;
            keep
        });
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        let bytes = &self.bytes;
        self.pairs.retain(|(key, _)| !has_name(bytes, *key, name));
    }

    fn add(&mut self, added: &[u8]) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(added);
        Span {
            start,
            end: self.bytes.len(),
        }
    }
}

/// The length first: most names are told apart by it, without reading them.
fn has_name(bytes: &[u8], key: Span, name: &str) -> bool {
    key.end - key.start == name.len() && bytes.get(key.start..key.end) == Some(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// proxy-wasm's serialization, written independently of the parser.
    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in pairs {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(value);
            out.push(0);
        }
        out
    }

    fn collected(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.iter()
            .map(|(name, value)| (name.to_string(), value.to_vec()))
            .collect()
    }

    #[test]
    fn reads_every_pair_in_order_repeated_names_and_empty_values_included() {
        let pairs: [(&[u8], &[u8]); 4] = [
            (b":path", b"/v1/models"),
            (b"x-api-key", b"k1"),
            (b"x-empty", b""),
            (b"x-api-key", b"k\xff2"),
        ];
        let map = HeaderMap::parse(serialize(&pairs)).unwrap();
        assert_eq!(map.len(), 4);
        let expected: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), v.to_vec()))
            .collect();
        assert_eq!(collected(&map), expected);
        assert_eq!(map.first("x-api-key"), Some(&b"k1"[..]));
        assert_eq!(map.first("x-other"), None);
        assert_eq!(map, HeaderMap::from_pairs(expected));
    }

    #[test]
    fn values_of_a_name_come_in_order_with_their_pair_index() {
        let map = HeaderMap::from_pairs([("ab", "1"), ("x", "2"), ("a", "3"), ("x", "4")]);
        let values: Vec<(usize, &[u8])> = map.values_of("x").collect();
        assert_eq!(values, [(1, &b"2"[..]), (3, &b"4"[..])]);
        assert_eq!(map.values_of("a").collect::<Vec<_>>(), [(2, &b"3"[..])]);
        assert_eq!(map.values_of("X").count(), 0);
        assert_eq!(map.first("ab"), Some(&b"1"[..]));
    }

    #[test]
    fn text_is_borrowed_when_utf8_and_lossy_otherwise() {
        assert!(matches!(text("/é".as_bytes()), Cow::Borrowed("/é")));
        assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(text(b""), "");
    }

    #[test]
    fn texts_are_read_in_place_and_others_rendered_once_per_pair() {
        let map = HeaderMap::from_pairs([
            ("x", b"a".to_vec()),
            ("y", vec![b'b', 0xff]),
            ("x", vec![0xfe]),
        ]);
        let texts = HeaderTexts::new(Cow::Borrowed(&map), |v| format!("<{}>", v.len()));
        assert!(texts.is_borrowed());
        assert_eq!(texts.values("x").collect::<Vec<_>>(), ["a", "<1>"]);
        assert_eq!(texts.first("y"), Some("<2>"));
        assert_eq!(texts.first("z"), None);
        let first = texts.first("y").unwrap().as_ptr();
        assert_eq!(
            texts.first("y").unwrap().as_ptr(),
            first,
            "rendered once, kept"
        );
    }

    #[test]
    fn an_empty_buffer_is_an_empty_map() {
        assert!(HeaderMap::parse(Vec::new()).unwrap().is_empty());
        assert!(HeaderMap::parse(serialize(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_name_that_is_not_utf8_reads_as_a_replacement_character_matching_nothing() {
        let map = HeaderMap::parse(serialize(&[(b"x-\xff", b"v")])).unwrap();
        assert_eq!(collected(&map), [("\u{fffd}".to_string(), b"v".to_vec())]);
        assert_eq!(map.first("x-"), None);
        assert_eq!(map.first("\u{fffd}"), None);
    }

    #[test]
    fn sizes_that_do_not_fit_the_buffer_are_refused_never_read_past() {
        let good = serialize(&[(b"a", b"b"), (b"cc", b"dd")]);
        for cut in 1..good.len() {
            assert_eq!(
                HeaderMap::parse(good[..cut].to_vec()),
                Err(MalformedMap),
                "cut at {cut}"
            );
        }
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::parse(huge_count), Err(MalformedMap));
        let mut huge_value = good;
        huge_value[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::parse(huge_value), Err(MalformedMap));
    }

    #[test]
    fn set_replaces_the_first_value_in_place_and_drops_the_others() {
        let mut map = HeaderMap::parse(serialize(&[
            (b"a", b"1"),
            (b"x", b"old"),
            (b"b", b"2"),
            (b"x", b"older"),
        ]))
        .unwrap();
        map.set("x", b"new");
        assert_eq!(
            map,
            HeaderMap::from_pairs([("a", "1"), ("x", "new"), ("b", "2")])
        );
        map.set("y", b"added");
        assert_eq!(map.first("y"), Some(&b"added"[..]));
        assert_eq!(map.len(), 4);
    }

    #[test]
    fn remove_drops_every_value_of_the_name_only() {
        let mut map = HeaderMap::from_pairs([("x", "1"), ("xx", "2"), ("x", "3")]);
        map.remove("x");
        assert_eq!(collected(&map), [("xx".to_string(), b"2".to_vec())]);
        map.remove("absent");
        assert_eq!(map.len(), 1);
    }
}
