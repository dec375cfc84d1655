//! Where do connections live? A [`Table`] holds them in fixed slots,
//! reserved at start-up and filled as connections come.

/// Connection slots. Reserved whole at start-up but filled only as far as
/// the busiest moment needed, so an idle server's untouched slots cost no
/// resident memory, and adding one never allocates.
pub struct Table<T> {
    slots: Vec<Option<T>>,
    // Kept apart: `Vec::with_capacity` may reserve more than asked.
    capacity: usize,
}

impl<T> Table<T> {
    /// A table of at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Table {
            slots: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Most entries at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A free slot, if there is capacity left: a vacated one first, else a
    /// new one at the end.
    pub fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            return Some(i);
        }
        if self.slots.len() < self.capacity() {
            self.slots.push(None);
            return Some(self.slots.len() - 1);
        }
        None
    }

    /// Fills slot `i` (from [`free_slot`](Self::free_slot)).
    pub fn put(&mut self, i: usize, value: T) {
        self.slots[i] = Some(value);
    }

    /// Empties slot `i`, returning what it held.
    pub fn take(&mut self, i: usize) -> Option<T> {
        self.slots.get_mut(i)?.take()
    }

    /// The entry in slot `i`.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    /// The entry in slot `i`, mutable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    /// Slots touched so far (filled or vacated).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The entries with their slot numbers.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
    }

    /// The entries, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }

    /// True if no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_filled_lazily_up_to_the_capacity() {
        let mut t: Table<&str> = Table::with_capacity(3);
        assert_eq!(t.capacity(), 3);
        assert_eq!(t.slots(), 0, "nothing touched before the first client");
        let a = t.free_slot().unwrap();
        t.put(a, "a");
        assert_eq!(t.slots(), 1);
        let b = t.free_slot().unwrap();
        t.put(b, "b");
        let c = t.free_slot().unwrap();
        t.put(c, "c");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(t.free_slot(), None, "full");
        assert_eq!(t.slots(), 3);
    }

    #[test]
    fn a_vacated_slot_is_reused_before_a_new_one() {
        let mut t: Table<u32> = Table::with_capacity(4);
        for v in 0..3 {
            let i = t.free_slot().unwrap();
            t.put(i, v);
        }
        assert_eq!(t.take(1), Some(1));
        assert_eq!(t.take(1), None, "taken once");
        assert_eq!(t.free_slot(), Some(1));
        t.put(1, 10);
        assert_eq!(t.slots(), 3, "no new slot while one was free");
        let seen: std::vec::Vec<_> = t.iter().map(|(i, v)| (i, *v)).collect();
        assert_eq!(seen, [(0, 0), (1, 10), (2, 2)]);
    }

    #[test]
    fn an_asked_for_but_unfilled_slot_is_offered_again() {
        let mut t: Table<u32> = Table::with_capacity(1);
        assert_eq!(t.free_slot(), Some(0));
        assert!(t.is_empty());
        assert_eq!(t.free_slot(), Some(0));
        t.put(0, 7);
        assert!(!t.is_empty());
        assert_eq!(t.free_slot(), None);
        assert_eq!(t.get(0), Some(&7));
        *t.get_mut(0).unwrap() += 1;
        assert_eq!(t.iter_mut().map(|v| *v).sum::<u32>(), 8);
        assert_eq!(t.get(5), None);
    }
}
