//! Record volume for sync tests and benchmarks: per account and model, N deterministic
//! records (Klaviyo profiles, Kustomer customers and conversations) that a control call
//! creates, changes and deletes. Records are generated on demand from their index, so
//! 100,000 of them cost a few counters; only changes and deletions are remembered.

use super::Provider;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use std::collections::{HashMap, HashSet};

/// The models that have volume, per provider.
pub const MODELS: [(Provider, &str); 3] = [
    (Provider::Klaviyo, "profiles"),
    (Provider::Kustomer, "customers"),
    (Provider::Kustomer, "conversations"),
];

/// One account's records of one model.
pub struct Dataset {
    pub count: usize,
    /// When the records were created: record `i` was last updated `count - i` seconds before.
    created: DateTime<Utc>,
    /// Index → (version, updated) of records changed since.
    changed: HashMap<usize, (u32, DateTime<Utc>)>,
    deleted: HashSet<usize>,
    /// Moves the choice of records each change call makes.
    rounds: usize,
}

/// What one record looks like at the moment.
pub struct Item {
    pub index: usize,
    pub version: u32,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl Dataset {
    fn new(count: usize) -> Self {
        Self {
            count,
            created: Utc::now(),
            changed: HashMap::new(),
            deleted: HashSet::new(),
            rounds: 0,
        }
    }

    pub fn live(&self) -> usize {
        self.count - self.deleted.len()
    }

    /// Record `index` unless it was deleted.
    pub fn item(&self, index: usize) -> Option<Item> {
        if index >= self.count || self.deleted.contains(&index) {
            return None;
        }
        let created = self.created - Duration::seconds((self.count - index) as i64);
        let (version, updated) = self.changed.get(&index).copied().unwrap_or((1, created));
        Some(Item {
            index,
            version,
            created,
            updated,
        })
    }

    /// Up to `limit` live records from index `from` on, updated after `since` when given,
    /// and the index to continue from (None at the end).
    pub fn scan(
        &self,
        from: usize,
        limit: usize,
        since: Option<DateTime<Utc>>,
    ) -> (Vec<Item>, Option<usize>) {
        let mut items = Vec::with_capacity(limit.min(1000));
        let mut index = from;
        while index < self.count && items.len() < limit {
            if let Some(item) = self.item(index) {
                if since.is_none_or(|since| item.updated > since) {
                    items.push(item);
                }
            }
            index += 1;
        }
        let more = index < self.count && self.has_match_from(index, since);
        (items, more.then_some(index))
    }

    fn has_match_from(&self, from: usize, since: Option<DateTime<Utc>>) -> bool {
        (from..self.count).any(|i| {
            self.item(i)
                .is_some_and(|item| since.is_none_or(|s| item.updated > s))
        })
    }

    /// The `skip`-th matching record on (page-number paging counts from the start).
    pub fn nth_index(&self, skip: usize, since: Option<DateTime<Utc>>) -> Option<usize> {
        if since.is_none() && self.deleted.is_empty() {
            return (skip < self.count).then_some(skip);
        }
        (0..self.count)
            .filter(|&i| {
                self.item(i)
                    .is_some_and(|item| since.is_none_or(|s| item.updated > s))
            })
            .nth(skip)
    }

    /// `k` distinct live records, spread over the whole range, different each round.
    fn pick(&mut self, k: usize) -> Vec<usize> {
        let live = self.live();
        let k = k.min(live);
        if k == 0 {
            return Vec::new();
        }
        self.rounds += 1;
        let step = (self.count / k).max(1);
        let mut picked = Vec::with_capacity(k);
        let mut chosen = HashSet::new();
        let mut index = self.rounds % step;
        let mut tried = 0;
        while picked.len() < k && tried < self.count * 2 {
            let i = index % self.count;
            if !self.deleted.contains(&i) && chosen.insert(i) {
                picked.push(i);
                index += step;
            } else {
                index += 1;
            }
            tried += 1;
        }
        picked
    }

    /// Deletes `delete` live records, then changes `change` of the remaining ones.
    pub fn mutate(&mut self, change: usize, delete: usize) -> (usize, usize) {
        let deleted = self.pick(delete);
        for i in &deleted {
            self.deleted.insert(*i);
            self.changed.remove(i);
        }
        let changed = self.pick(change);
        let now = Utc::now();
        for i in &changed {
            let version = self.changed.get(i).map_or(1, |(v, _)| *v) + 1;
            self.changed.insert(*i, (version, now));
        }
        (changed.len(), deleted.len())
    }
}

/// Every dataset, by provider, account and model.
#[derive(Default)]
pub struct Volume {
    sets: HashMap<(Provider, String, String), Dataset>,
}

impl Volume {
    pub fn get(&self, provider: Provider, account: &str, model: &str) -> Option<&Dataset> {
        self.sets
            .get(&(provider, account.to_string(), model.to_string()))
    }

    /// Creates (or replaces) `count` records.
    pub fn create(&mut self, provider: Provider, account: &str, model: &str, count: usize) {
        self.sets.insert(
            (provider, account.to_string(), model.to_string()),
            Dataset::new(count),
        );
    }

    pub fn get_mut(
        &mut self,
        provider: Provider,
        account: &str,
        model: &str,
    ) -> Option<&mut Dataset> {
        self.sets
            .get_mut(&(provider, account.to_string(), model.to_string()))
    }
}

/// Timestamps as both providers write them: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stable id per account, model and index; zero-padded so ids sort like indexes.
pub fn record_id(account: &str, model: &str, index: usize) -> String {
    let prefix: String = account
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    let tag = &model[..1];
    format!("{tag}{prefix}{index:08}")
}

/// The index of a record id made by `record_id`.
#[cfg(test)]
pub fn index_of(id: &str) -> Option<usize> {
    id.get(id.len().checked_sub(8)?..)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_change_and_delete_exactly_what_is_asked() {
        let mut set = Dataset::new(1000);
        assert_eq!(set.live(), 1000);
        let before = Utc::now() - Duration::milliseconds(1);
        assert_eq!(set.mutate(50, 20), (50, 20));
        assert_eq!(set.live(), 980);
        let (changed, next) = set.scan(0, 1000, Some(before));
        assert_eq!(changed.len(), 50);
        assert!(changed.iter().all(|item| item.version == 2));
        assert_eq!(next, None);
        let (all, next) = set.scan(0, 100, None);
        assert_eq!((all.len(), next.is_some()), (100, true));
        // Deleted and changed records differ; another round picks others.
        assert_eq!(set.mutate(10, 10), (10, 10));
        assert_eq!(set.live(), 970);
        assert_eq!(index_of(&record_id("AcmeK1", "profiles", 42)), Some(42));
    }

    #[test]
    fn page_offsets_skip_deleted_records() {
        let mut set = Dataset::new(30);
        set.mutate(0, 3);
        let mut seen = 0;
        let mut skip = 0;
        while let Some(i) = set.nth_index(skip, None) {
            assert!(set.item(i).is_some());
            seen += 1;
            skip += 1;
        }
        assert_eq!(seen, 27);
    }
}
