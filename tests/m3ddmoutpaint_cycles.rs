// SPDX-License-Identifier: MPL-2.0
//! 100 NULL→PLAYING→NULL cycles of a pipeline around `m3ddmoutpaint` leak
//! neither the element nor threads. A test binary of its own, so that no other
//! test's threads come and go while the threads are counted.

mod common;

use common::*;

/// Streaming threads of one cycle: the source's task and the element's task.
const TASKS_PER_CYCLE: usize = 2;
/// Idle threads that GLib's thread pools keep for reuse (`g_thread_pool_get_max_unused_threads` is 2).
const IDLE_POOL_THREADS: usize = 2;

#[test]
fn test_100_state_cycles_leak_nothing() {
    init();
    // The first cycle starts GStreamer's own lasting threads (clock, pools).
    assert!(released(&pipeline_cycle("fill-mode=blur", 3)));
    let before = thread_count();
    let mut counts = Vec::new();
    for cycle in 0..100 {
        let weak = pipeline_cycle("fill-mode=blur", 3);
        assert!(
            released(&weak),
            "cycle {cycle}: the element outlived its pipeline"
        );
        counts.push(thread_count());
    }
    eprintln!("threads before: {before}, after each cycle: {counts:?}");
    // A thread kept by each cycle would add 100; the pools may keep a few for
    // reuse, and a task thread may still be on its way back to its pool.
    let bound = before + TASKS_PER_CYCLE + IDLE_POOL_THREADS;
    assert!(
        counts.iter().all(|&n| n <= bound),
        "threads grew past {bound}: {counts:?}"
    );
}
