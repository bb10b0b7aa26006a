//! The listing cache: per level, what this client knows the replica holds, kept true
//! by its own writes and deletes, and the rules for when that knowledge is dropped.
//!
//! Tideline is the only writer of its replica while it runs, so once a client has
//! written, each level is listed once and then kept by its own changes. A level is
//! forgotten after something went wrong with it (a failed request, a missing file)
//! and listed again when asked for a fresh listing. Writes and deletes made while a
//! listing is in flight are applied over it, since it may or may not show them.
//!
//! Reason to change: when a listing may be trusted, or how one is merged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tideline_ltx::Txid;

use super::{FileInfo, ReplicaResult};

/// One level's listing, kept true by this client's own writes and deletes.
pub(crate) type LevelCache = BTreeMap<(Txid, Txid), FileInfo>;

/// Every level's [`Listing`].
#[derive(Debug, Default)]
pub(crate) struct Cache(Mutex<[Listing; 10]>);

impl Cache {
    pub(crate) fn lock(&self) -> MutexGuard<'_, [Listing; 10]> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets `level`'s listing.
    pub(crate) fn invalidate(&self, level: u8) {
        self.lock()[usize::from(level)].invalidate();
    }

    /// The cached listing of `level`, if known.
    pub(crate) fn files(&self, level: u8) -> Option<Vec<FileInfo>> {
        let cache = self.lock();
        let files = cache[usize::from(level)].files.as_ref()?;
        Some(files.values().cloned().collect())
    }

    /// Records a file this client wrote: it is in the listing from now on.
    pub(crate) fn wrote(&self, info: &FileInfo) {
        self.lock()[usize::from(info.level)].record_write(info);
    }

    /// Starts a listing of `level`: this client's changes are recorded for it until
    /// it ends ([`ListingInFlight::finish`], or dropped).
    pub(crate) fn begin_listing(&self, level: u8) -> ListingInFlight<'_> {
        self.lock()[usize::from(level)].in_flight += 1;
        ListingInFlight {
            cache: Some(self),
            level,
        }
    }
}

/// Per level: the listing if known, and files written before it was listed (whose
/// exact creation times the next listing keeps; LIST only gives upload times).
#[derive(Debug, Default)]
pub(crate) struct Listing {
    files: Option<LevelCache>,
    written: LevelCache,
    /// Listings of this level under way.
    in_flight: u32,
    /// This client's writes and deletes while a listing was under way: the listing
    /// may or may not show them, so they are applied over it.
    changes: Changes,
}

#[derive(Debug, Default, Clone)]
struct Changes {
    written: LevelCache,
    deleted: BTreeSet<(Txid, Txid)>,
}

impl Listing {
    /// Forgets the listing (the next `list` asks the server). Files written before
    /// are still remembered for their creation times.
    pub(crate) fn invalidate(&mut self) {
        self.files = None;
    }

    /// Ends one listing under way: the changes to apply over it (kept for the others
    /// still under way, dropped after the last).
    fn end_listing(&mut self) -> Changes {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            std::mem::take(&mut self.changes)
        } else {
            self.changes.clone()
        }
    }

    /// Takes `listed` as the level's listing: the exact creation times known for
    /// files this client wrote (LIST gives upload times), and `changes` applied over
    /// it. Returns the listing.
    fn merge(&mut self, mut listed: LevelCache, changes: Changes) -> Vec<FileInfo> {
        let known = self.files.take().into_iter().flatten();
        for (k, mine) in known.chain(std::mem::take(&mut self.written)) {
            if let Some(f) = listed.get_mut(&k) {
                f.created_at = mine.created_at;
            }
        }
        for (k, f) in changes.written {
            listed.insert(k, f);
        }
        for k in &changes.deleted {
            listed.remove(k);
        }
        let out = listed.values().cloned().collect();
        self.files = Some(listed);
        out
    }

    /// Records a file this client wrote.
    pub(crate) fn record_write(&mut self, info: &FileInfo) {
        let k = (info.min_txid, info.max_txid);
        match &mut self.files {
            Some(cached) => cached.insert(k, info.clone()),
            None => self.written.insert(k, info.clone()),
        };
        if self.in_flight > 0 {
            self.changes.deleted.remove(&k);
            self.changes.written.insert(k, info.clone());
        }
    }

    /// Records a file this client deleted.
    pub(crate) fn record_delete(&mut self, min: Txid, max: Txid) {
        self.written.remove(&(min, max));
        if let Some(c) = &mut self.files {
            c.remove(&(min, max));
        }
        if self.in_flight > 0 {
            self.changes.written.remove(&(min, max));
            self.changes.deleted.insert((min, max));
        }
    }
}

/// A listing under way. Ends it when dropped half way (a shutdown past its
/// deadline), so that writes stop being recorded for a listing that will never
/// arrive.
pub(crate) struct ListingInFlight<'a> {
    /// `None` once the listing ended normally.
    cache: Option<&'a Cache>,
    level: u8,
}

impl ListingInFlight<'_> {
    /// Ends the listing with what the server answered: when it listed the level, that
    /// becomes the cached listing, with this client's knowledge applied over it.
    pub(crate) fn finish(
        mut self,
        result: ReplicaResult<LevelCache>,
    ) -> ReplicaResult<Vec<FileInfo>> {
        let Some(cache) = self.cache.take() else {
            return result.map(|l| l.into_values().collect());
        };
        let mut levels = cache.lock();
        let entry = &mut levels[usize::from(self.level)];
        let changes = entry.end_listing();
        Ok(entry.merge(result?, changes))
    }
}

impl Drop for ListingInFlight<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cache {
            c.lock()[usize::from(self.level)].end_listing();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::storage::ReplicaError;

    const LEVEL: u8 = 2;

    fn file(min: u64, max: u64, secs: u64) -> FileInfo {
        FileInfo {
            level: LEVEL,
            min_txid: Txid(min),
            max_txid: Txid(max),
            size: 100,
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn listing(files: &[FileInfo]) -> LevelCache {
        files
            .iter()
            .map(|f| ((f.min_txid, f.max_txid), f.clone()))
            .collect()
    }

    fn ranges(files: &[FileInfo]) -> Vec<(u64, u64)> {
        files.iter().map(|f| (f.min_txid.0, f.max_txid.0)).collect()
    }

    fn listed(cache: &Cache, files: &[FileInfo]) -> Vec<FileInfo> {
        cache
            .begin_listing(LEVEL)
            .finish(Ok(listing(files)))
            .unwrap()
    }

    fn record_write(cache: &Cache, f: &FileInfo) {
        cache.lock()[usize::from(LEVEL)].record_write(f);
    }

    fn record_delete(cache: &Cache, min: u64, max: u64) {
        cache.lock()[usize::from(LEVEL)].record_delete(Txid(min), Txid(max));
    }

    #[test]
    fn nothing_is_known_before_a_listing() {
        let cache = Cache::default();
        assert_eq!(cache.files(LEVEL), None);
        // A write alone does not make a listing.
        record_write(&cache, &file(1, 1, 10));
        assert_eq!(cache.files(LEVEL), None);
        let out = listed(&cache, &[file(1, 1, 500), file(2, 2, 600)]);
        assert_eq!(ranges(&out), [(1, 1), (2, 2)]);
        assert_eq!(cache.files(LEVEL).unwrap(), out);
        assert_eq!(cache.files(LEVEL + 1), None, "other levels are unaffected");
    }

    #[test]
    fn a_listing_keeps_the_exact_times_of_files_written_here() {
        let cache = Cache::default();
        record_write(&cache, &file(1, 1, 10));
        // LIST answers with upload times.
        let out = listed(&cache, &[file(1, 1, 500), file(2, 2, 600)]);
        assert_eq!(out[0].created_at, file(1, 1, 10).created_at);
        assert_eq!(out[1].created_at, file(2, 2, 600).created_at);
        // And keeps them across a fresh listing too.
        let again = listed(&cache, &[file(1, 1, 500), file(2, 2, 600)]);
        assert_eq!(again, out);
    }

    #[test]
    fn writes_and_deletes_keep_a_known_listing_true() {
        let cache = Cache::default();
        listed(&cache, &[file(1, 1, 1), file(2, 2, 2)]);
        record_write(&cache, &file(3, 3, 3));
        record_delete(&cache, 1, 1);
        assert_eq!(ranges(&cache.files(LEVEL).unwrap()), [(2, 2), (3, 3)]);
    }

    #[test]
    fn changes_during_a_listing_are_applied_over_it() {
        let cache = Cache::default();
        listed(&cache, &[file(1, 1, 1), file(2, 2, 2)]);
        let flight = cache.begin_listing(LEVEL);
        // Written after the server listed; deleted after the server listed.
        record_write(&cache, &file(3, 3, 3));
        record_delete(&cache, 1, 1);
        let out = flight
            .finish(Ok(listing(&[file(1, 1, 1), file(2, 2, 2)])))
            .unwrap();
        assert_eq!(ranges(&out), [(2, 2), (3, 3)]);
        // The changes are dropped with the last listing: a later one is believed.
        let later = listed(&cache, &[file(2, 2, 2)]);
        assert_eq!(ranges(&later), [(2, 2)]);
    }

    #[test]
    fn a_rewrite_after_a_delete_during_a_listing_counts_as_written() {
        let cache = Cache::default();
        let flight = cache.begin_listing(LEVEL);
        record_delete(&cache, 4, 4);
        record_write(&cache, &file(4, 4, 4));
        let out = flight.finish(Ok(LevelCache::new())).unwrap();
        assert_eq!(ranges(&out), [(4, 4)]);
        let flight = cache.begin_listing(LEVEL);
        record_write(&cache, &file(5, 5, 5));
        record_delete(&cache, 5, 5);
        let out = flight.finish(Ok(listing(&[file(5, 5, 5)]))).unwrap();
        assert!(ranges(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn overlapping_listings_each_see_the_changes() {
        let cache = Cache::default();
        let first = cache.begin_listing(LEVEL);
        let second = cache.begin_listing(LEVEL);
        record_write(&cache, &file(7, 7, 7));
        let out = first.finish(Ok(LevelCache::new())).unwrap();
        assert_eq!(ranges(&out), [(7, 7)]);
        let out = second.finish(Ok(LevelCache::new())).unwrap();
        assert_eq!(
            ranges(&out),
            [(7, 7)],
            "kept for the listing still under way"
        );
        assert_eq!(cache.lock()[usize::from(LEVEL)].in_flight, 0);
    }

    #[test]
    fn a_failed_listing_ends_and_leaves_the_cache_as_it_was() {
        let cache = Cache::default();
        listed(&cache, &[file(1, 1, 1)]);
        let flight = cache.begin_listing(LEVEL);
        record_write(&cache, &file(2, 2, 2));
        let err = flight
            .finish(Err(ReplicaError::BadLevel(LEVEL)))
            .unwrap_err();
        assert!(matches!(err, ReplicaError::BadLevel(LEVEL)));
        {
            let levels = cache.lock();
            let entry = &levels[usize::from(LEVEL)];
            assert_eq!(entry.in_flight, 0);
            assert!(entry.changes.written.is_empty());
        }
        // Still the listing it had, with the write made meanwhile.
        assert_eq!(ranges(&cache.files(LEVEL).unwrap()), [(1, 1), (2, 2)]);
    }

    #[test]
    fn invalidation_forgets_listings_but_not_exact_times() {
        let cache = Cache::default();
        listed(&cache, &[file(1, 1, 1)]);
        cache.lock()[0].record_write(&FileInfo {
            level: 0,
            ..file(9, 9, 9)
        });
        cache
            .begin_listing(0)
            .finish(Ok(LevelCache::new()))
            .unwrap();
        cache.invalidate(LEVEL);
        assert_eq!(cache.files(LEVEL), None);
        assert!(cache.files(0).is_some(), "only the level named");
        cache.invalidate(0);
        assert_eq!(cache.files(0), None);
        // A file written while the listing is forgotten keeps its time in the next.
        record_write(&cache, &file(2, 2, 20));
        let out = listed(&cache, &[file(1, 1, 100), file(2, 2, 200)]);
        assert_eq!(out[1].created_at, file(2, 2, 20).created_at);
    }

    #[test]
    fn a_dropped_listing_stops_recording_changes() {
        let cache = Cache::default();
        let flight = cache.begin_listing(3);
        cache.lock()[3].record_delete(Txid(1), Txid(1));
        assert_eq!(cache.lock()[3].changes.deleted.len(), 1);
        drop(flight);
        let levels = cache.lock();
        assert_eq!(levels[3].in_flight, 0);
        assert!(levels[3].changes.deleted.is_empty());
    }
}
