//! A byte trie mapping keys to pattern ids: one walk over the input finds every stored key that
//! is a prefix of it (and whether the whole input is stored), so a lookup costs O(input length)
//! whatever the number of keys.

/// What a stored key means for the input: the input must equal it, or only start with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Whole,
    Prefix,
}

#[derive(Debug, Default, Clone)]
struct Node {
    /// Sorted by byte, searched by binary search.
    children: Vec<(u8, u32)>,
    whole: Vec<u32>,
    prefix: Vec<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
        }
    }
}

impl Trie {
    pub(crate) fn insert(&mut self, key: impl IntoIterator<Item = u8>, kind: KeyKind, id: u32) {
        let mut at = 0usize;
        for byte in key {
            let next_free = self.nodes.len() as u32;
            let Some(node) = self.nodes.get_mut(at) else {
                return;
            };
            at = match node.children.binary_search_by_key(&byte, |&(b, _)| b) {
                Ok(found) => node.children.get(found).map_or(0, |&(_, child)| child) as usize,
                Err(slot) => {
                    node.children.insert(slot, (byte, next_free));
                    self.nodes.push(Node::default());
                    next_free as usize
                }
            };
        }
        if let Some(node) = self.nodes.get_mut(at) {
            match kind {
                KeyKind::Whole => node.whole.push(id),
                KeyKind::Prefix => node.prefix.push(id),
            }
        }
    }

    /// Calls `found` with the id of every stored key the input matches: prefix keys that start
    /// the input (including the empty key and the whole input) and whole keys equal to it.
    pub(crate) fn walk(&self, input: impl IntoIterator<Item = u8>, found: &mut impl FnMut(u32)) {
        let mut node = self.nodes.first();
        let mut input = input.into_iter();
        while let Some(current) = node {
            current.prefix.iter().copied().for_each(&mut *found);
            let Some(byte) = input.next() else {
                current.whole.iter().copied().for_each(&mut *found);
                return;
            };
            node = current
                .children
                .binary_search_by_key(&byte, |&(b, _)| b)
                .ok()
                .and_then(|i| current.children.get(i))
                .and_then(|&(_, child)| self.nodes.get(child as usize));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn found(trie: &Trie, input: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        trie.walk(input.bytes(), &mut |id| ids.push(id));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn whole_and_prefix_keys() {
        let mut trie = Trie::default();
        trie.insert("/a".bytes(), KeyKind::Whole, 1);
        trie.insert("/a".bytes(), KeyKind::Prefix, 2);
        trie.insert("/ab".bytes(), KeyKind::Prefix, 3);
        trie.insert("".bytes(), KeyKind::Prefix, 4);
        assert_eq!(found(&trie, "/a"), vec![1, 2, 4]);
        assert_eq!(found(&trie, "/abc"), vec![2, 3, 4]);
        assert_eq!(found(&trie, "/b"), vec![4]);
        assert_eq!(found(&trie, ""), vec![4]);
    }
}
