//! Unit tests of the usage recorder: pending, in-flight and written uses.

use chrono::TimeDelta;

use super::*;

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

/// Takes everything for a write that succeeds.
fn flush(recorder: &UsageRecorder) -> Vec<UsageUpdate> {
    let write = recorder.start_write();
    let batch = write.batch().to_vec();
    write.written();
    batch
}

#[test]
fn counts_merge_and_a_failed_write_puts_them_back() {
    let recorder = UsageRecorder::new();
    let (a, b) = (KeyId::new(), KeyId::new());
    let counter = recorder.counter(a);
    counter.record(1, t0(), None);
    counter.record(1, t0() + TimeDelta::seconds(5), ip("192.0.2.1"));
    recorder
        .counter(a)
        .record(1, t0() + TimeDelta::seconds(1), None);
    recorder.counter(b).record(1, t0(), None);
    assert_eq!(recorder.pending(), 4);
    let write = recorder.start_write();
    let a_update = *write.batch().iter().find(|u| u.id == a).unwrap();
    assert_eq!(a_update.count, 3);
    assert_eq!(a_update.last_used_ip, ip("192.0.2.1"));
    assert_eq!(a_update.last_used_at, t0() + TimeDelta::seconds(5));
    assert!(recorder.start_write().batch().is_empty());
    drop(write);
    counter.record(1, t0(), None);
    let again = flush(&recorder);
    assert_eq!(again.iter().find(|u| u.id == a).unwrap().count, 4);
    assert_eq!(again.iter().find(|u| u.id == b).unwrap().count, 1);
    assert_eq!(recorder.pending(), 0);
}

#[test]
fn idle_counters_are_forgotten_unless_held() {
    let recorder = UsageRecorder::new();
    let (held, idle) = (KeyId::new(), KeyId::new());
    let counter = recorder.counter(held);
    drop(recorder.counter(idle));
    assert!(flush(&recorder).is_empty());
    assert_eq!(recorder.lock().keys.len(), 1);
    counter.record(2, Utc::now(), None);
    assert_eq!(flush(&recorder)[0].count, 2);
}

#[test]
fn peek_leaves_the_uses_pending() {
    let recorder = UsageRecorder::new();
    let (a, b) = (KeyId::new(), KeyId::new());
    assert_eq!(recorder.peek(a), None);
    let counter = recorder.counter(a);
    assert_eq!(recorder.peek(a), None, "a counter without uses");
    counter.record(2, t0(), ip("10.0.0.1"));
    let expected = UsageUpdate {
        id: a,
        count: 2,
        last_used_at: t0(),
        last_used_ip: ip("10.0.0.1"),
    };
    assert_eq!(recorder.peek(a), Some(expected));
    assert_eq!(recorder.peek(a), Some(expected), "peeking takes nothing");
    assert_eq!(recorder.peek(b), None);
    assert_eq!(flush(&recorder), [expected]);
    assert_eq!(recorder.peek(a), None, "written uses are no longer pending");
}

#[test]
fn uses_being_written_stay_visible_once() {
    let recorder = UsageRecorder::new();
    let id = KeyId::new();
    let counter = recorder.counter(id);
    counter.record(3, t0(), ip("10.0.0.1"));
    let write = recorder.start_write();
    assert_eq!(write.batch().len(), 1);
    // Taken by the write, not yet written: still there, counted once.
    assert_eq!(recorder.peek(id).map(|u| u.count), Some(3));
    assert_eq!(recorder.pending(), 3);
    // New uses while the write runs add up with it; the latest use wins.
    counter.record(2, t0() + TimeDelta::seconds(4), ip("10.0.0.2"));
    let seen = recorder.peek(id).unwrap();
    assert_eq!(seen.count, 5);
    assert_eq!(seen.last_used_at, t0() + TimeDelta::seconds(4));
    assert_eq!(seen.last_used_ip, ip("10.0.0.2"));
    // The write succeeds: only the new uses remain.
    write.written();
    assert_eq!(recorder.peek(id).map(|u| u.count), Some(2));
    assert_eq!(recorder.pending(), 2);
}

#[test]
fn a_failed_write_is_neither_lost_nor_doubled() {
    let recorder = UsageRecorder::new();
    let id = KeyId::new();
    let counter = recorder.counter(id);
    counter.record(3, t0() + TimeDelta::seconds(9), ip("10.0.0.1"));
    let write = recorder.start_write();
    counter.record(1, t0() + TimeDelta::seconds(1), ip("10.0.0.2"));
    assert_eq!(recorder.peek(id).map(|u| u.count), Some(4));
    drop(write);
    let back = recorder.peek(id).unwrap();
    assert_eq!(back.count, 4, "put back once");
    assert_eq!(back.last_used_at, t0() + TimeDelta::seconds(9));
    assert_eq!(back.last_used_ip, ip("10.0.0.1"));
    assert_eq!(flush(&recorder)[0].count, 4);
    assert_eq!(recorder.peek(id), None);
}

#[test]
fn overlapping_writes_end_independently() {
    let recorder = UsageRecorder::new();
    let id = KeyId::new();
    let counter = recorder.counter(id);
    counter.record(1, t0(), None);
    let first = recorder.start_write();
    counter.record(2, t0() + TimeDelta::seconds(1), None);
    let second = recorder.start_write();
    counter.record(4, t0() + TimeDelta::seconds(2), None);
    assert_eq!(recorder.peek(id).map(|u| u.count), Some(7));
    drop(first);
    assert_eq!(
        recorder.peek(id).map(|u| u.count),
        Some(7),
        "the first is back"
    );
    second.written();
    assert_eq!(recorder.peek(id).map(|u| u.count), Some(5));
    assert!(recorder.lock().writing.is_empty());
}

#[test]
fn concurrent_flushes_never_lose_or_hide_a_use() {
    const USES: u64 = 20_000;
    let recorder = Arc::new(UsageRecorder::new());
    let id = KeyId::new();
    let recorded = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let user = {
        let (counter, recorded) = (recorder.counter(id), Arc::clone(&recorded));
        std::thread::spawn(move || {
            for _ in 0..USES {
                counter.record(1, t0(), None);
                recorded.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let flusher = {
        let (recorder, stop, written) = (
            Arc::clone(&recorder),
            Arc::clone(&stop),
            Arc::clone(&written),
        );
        std::thread::spawn(move || {
            let mut round = 0_u32;
            while !stop.load(Ordering::SeqCst) {
                let write = recorder.start_write();
                let count: u64 = write.batch().iter().map(|u| u.count).sum();
                round += 1;
                // Every other write fails and is put back; a store commits before the
                // write ends.
                if round % 2 == 0 {
                    written.fetch_add(count, Ordering::SeqCst);
                    write.written();
                }
            }
        })
    };
    while !user.is_finished() {
        // Uses recorded before the peek are pending, being written, or written by the
        // time the written total is read after it.
        let before = recorded.load(Ordering::SeqCst);
        let pending = recorder.peek(id).map_or(0, |u| u.count);
        let total = pending + written.load(Ordering::SeqCst);
        assert!(total >= before, "{total} < {before}");
    }
    user.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    flusher.join().unwrap();
    let left = recorder.peek(id).map_or(0, |u| u.count);
    assert_eq!(left + written.load(Ordering::SeqCst), USES);
}
