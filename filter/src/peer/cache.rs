//! Decoded peers keyed by the peer id header.
//!
//! A sidecar talks to few distinct peers but sees their headers on every
//! request, so decoding once per peer is the difference between a base64 and
//! protobuf parse per request and a hash lookup.

use std::hash::BuildHasher;
use std::rc::Rc;

use hashbrown::HashMap;

use super::{DecodeError, PeerNode};

pub const DEFAULT_PEER_CACHE_SIZE: usize = 500;

struct Slot {
    id: Rc<str>,
    /// Hash and length of the header the node was decoded from: enough to
    /// notice a peer that changed its metadata under the same id, without
    /// keeping a second copy of every header.
    header_hash: u64,
    header_len: usize,
    node: Rc<PeerNode>,
    /// CLOCK's second-chance bit: set on a hit, cleared as the hand passes.
    referenced: bool,
}

/// Bounded cache of decoded peers. When full it evicts with CLOCK, which
/// keeps peers seen again since the hand last passed, so a burst of one-off
/// peers cannot flush the steady ones. It never holds more than its capacity.
pub struct PeerCache {
    capacity: usize,
    index: HashMap<Rc<str>, usize>,
    slots: Vec<Slot>,
    hand: usize,
}

impl PeerCache {
    /// A capacity of 0 disables caching: every call decodes.
    pub fn new(capacity: usize) -> Self {
        PeerCache {
            capacity,
            index: HashMap::new(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Returns the cached peer for `id` if it was decoded from this same
    /// `header`; otherwise decodes `header`, caches it and returns it. A
    /// header that fails to decode is not cached, and leaves any older entry
    /// for `id` in place.
    pub fn get_or_decode(&mut self, id: &str, header: &str) -> Result<Rc<PeerNode>, DecodeError> {
        let header_hash = self.index.hasher().hash_one(header);
        let header_len = header.len();
        let existing = self.index.get(id).copied();
        if let Some(slot) = existing.and_then(|i| self.slots.get_mut(i)) {
            if slot.header_hash == header_hash && slot.header_len == header_len {
                slot.referenced = true;
                return Ok(Rc::clone(&slot.node));
            }
            let node = Rc::new(PeerNode::from_header_value(header)?);
            slot.header_hash = header_hash;
            slot.header_len = header_len;
            slot.node = Rc::clone(&node);
            slot.referenced = true;
            return Ok(node);
        }

        let node = Rc::new(PeerNode::from_header_value(header)?);
        if self.capacity == 0 {
            return Ok(node);
        }
        let id: Rc<str> = Rc::from(id);
        let slot = Slot {
            id: Rc::clone(&id),
            header_hash,
            header_len,
            node: Rc::clone(&node),
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            self.index.insert(id, self.slots.len());
            self.slots.push(slot);
        } else {
            let victim = self.advance_hand();
            if let Some(old) = self.slots.get_mut(victim) {
                self.index.remove(&old.id);
                *old = slot;
                self.index.insert(id, victim);
            }
        }
        Ok(node)
    }

    /// Picks the slot to evict: the first unreferenced one at or after the
    /// hand, clearing reference bits on the way. Ends within two sweeps.
    fn advance_hand(&mut self) -> usize {
        let len = self.slots.len();
        for _ in 0..=len {
            let i = self.hand;
            self.hand = if i + 1 >= len { 0 } else { i + 1 };
            match self.slots.get_mut(i) {
                Some(slot) if slot.referenced => slot.referenced = false,
                _ => return i,
            }
        }
        self.hand
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> String {
        PeerNode {
            name: name.into(),
            namespace: "ns".into(),
            ..PeerNode::default()
        }
        .to_header_value()
    }

    #[test]
    fn hits_share_the_decoded_node() {
        let mut cache = PeerCache::new(DEFAULT_PEER_CACHE_SIZE);
        let first = cache.get_or_decode("id-a", &header("a")).unwrap();
        let again = cache.get_or_decode("id-a", &header("a")).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        assert_eq!(first.name, "a");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.capacity(), 500);
    }

    #[test]
    fn changed_header_under_same_id_is_redecoded() {
        let mut cache = PeerCache::new(4);
        let old = cache.get_or_decode("id", &header("old")).unwrap();
        let new = cache.get_or_decode("id", &header("new")).unwrap();
        assert!(!Rc::ptr_eq(&old, &new));
        assert_eq!(new.name, "new");
        assert!(Rc::ptr_eq(
            &new,
            &cache.get_or_decode("id", &header("new")).unwrap()
        ));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn decode_failures_are_not_cached() {
        let mut cache = PeerCache::new(4);
        assert_eq!(
            cache.get_or_decode("bad", "!!").unwrap_err().to_string(),
            "invalid base64 at byte 0"
        );
        assert!(cache.is_empty());
        let good = cache.get_or_decode("id", &header("a")).unwrap();
        assert!(cache.get_or_decode("id", "CikK").is_err());
        assert!(Rc::ptr_eq(
            &good,
            &cache.get_or_decode("id", &header("a")).unwrap()
        ));
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let mut cache = PeerCache::new(16);
        for i in 0..1000 {
            let node = cache
                .get_or_decode(&format!("id-{i}"), &header(&i.to_string()))
                .unwrap();
            assert_eq!(node.name, i.to_string());
            assert!(cache.len() <= 16);
        }
        assert_eq!(cache.len(), 16);
        assert_eq!(cache.index.len(), 16);
        // The most recent insert is always still cached and maps to its own slot.
        let last = cache.get_or_decode("id-999", &header("999")).unwrap();
        assert!(Rc::ptr_eq(
            &last,
            &cache.get_or_decode("id-999", &header("999")).unwrap()
        ));
        for (id, &slot) in &cache.index {
            assert_eq!(&cache.slots[slot].id, id);
        }
    }

    #[test]
    fn peers_seen_again_survive_a_burst_of_new_ones() {
        let mut cache = PeerCache::new(4);
        let hot = cache.get_or_decode("hot", &header("hot")).unwrap();
        for i in 0..100 {
            assert!(
                Rc::ptr_eq(&hot, &cache.get_or_decode("hot", &header("hot")).unwrap()),
                "evicted at {i}"
            );
            cache
                .get_or_decode(&format!("cold-{i}"), &header("cold"))
                .unwrap();
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut cache = PeerCache::new(0);
        let a = cache.get_or_decode("id", &header("a")).unwrap();
        let b = cache.get_or_decode("id", &header("a")).unwrap();
        assert_eq!(a, b);
        assert!(!Rc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 0);
    }
}
