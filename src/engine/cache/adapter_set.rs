//! Which LoRA adapters, at which scales, computed what a sequence's cache holds. Tokens
//! evaluated under one set are not the same state under another, so a cached prefix (or a
//! checkpoint) is reused only by a request whose set is equal.

/// Adapter ids with their scales, ordered by id, scale-0 adapters left out (they change
/// nothing: llama.cpp skips them too). The empty set is the base model.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AdapterSet(Vec<(u32, f32)>);

impl AdapterSet {
    /// The set of these (id, scale) pairs; ids are distinct.
    pub fn new(pairs: impl IntoIterator<Item = (u32, f32)>) -> Self {
        let mut pairs: Vec<(u32, f32)> = pairs.into_iter().filter(|&(_, s)| s != 0.0).collect();
        pairs.sort_by_key(|&(id, _)| id);
        Self(pairs)
    }

    /// The (id, scale) pairs, by id.
    pub fn pairs(&self) -> &[(u32, f32)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_zero_scales_do_not_matter() {
        assert_eq!(
            AdapterSet::new([(2, 1.0), (1, 0.5), (3, 0.0)]),
            AdapterSet::new([(1, 0.5), (2, 1.0)])
        );
        assert_eq!(AdapterSet::new([(1, 0.0)]), AdapterSet::default());
        assert_ne!(
            AdapterSet::new([(1, 0.5)]),
            AdapterSet::new([(1, 1.0)]),
            "the scale is part of the set"
        );
    }
}
