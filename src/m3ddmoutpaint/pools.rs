// SPDX-License-Identifier: MPL-2.0
//! Buffer pools: the element's answer to upstream's ALLOCATION query (video
//! meta, a minimum buffer count that covers the frames it holds, and a pool
//! of that size proposed), and the pool downstream offers for an output,
//! which output frames are then written into (with video meta when
//! downstream takes it).

use gst::prelude::*;

use super::CAT;

/// Answers upstream's ALLOCATION query: video meta, and for frames of the
/// query's caps a pool of at least `held` buffers (the frames the element may
/// hold at once), proposed when upstream asks for one.
pub fn answer_allocation(query: &mut gst::query::Allocation, held: u32) {
    query.add_allocation_meta::<gst_video::VideoMeta>(None);
    let (caps, need_pool) = query.get_owned();
    let Some(info) = caps
        .as_ref()
        .and_then(|caps| gst_video::VideoInfo::from_caps(caps).ok())
    else {
        return;
    };
    let size = info.size() as u32;
    let pool = need_pool
        .then(|| video_pool(caps.as_ref(), size, held, 0, true))
        .flatten();
    query.add_allocation_pool(pool.as_ref(), size, held, 0);
}

/// A video buffer pool configured for `caps` (not active).
fn video_pool(
    caps: Option<&gst::Caps>,
    size: u32,
    min: u32,
    max: u32,
    video_meta: bool,
) -> Option<gst::BufferPool> {
    let pool = gst_video::VideoBufferPool::new();
    let mut config = pool.config();
    config.set_params(caps, size, min, max);
    if video_meta {
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
    }
    pool.set_config(config).ok()?;
    Some(pool.upcast())
}

/// The pool downstream of `pad` offers for frames of `caps`, configured and
/// active; `None` when it offers none or it cannot be set up (then output
/// frames are allocated by the element).
pub fn downstream_pool(pad: &gst::Pad, caps: &gst::Caps) -> Option<gst::BufferPool> {
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    let mut query = gst::query::Allocation::new(Some(caps), true);
    if !pad.peer_query(&mut query) {
        return None;
    }
    let video_meta = query
        .find_allocation_meta::<gst_video::VideoMeta>()
        .is_some();
    let (pool, size, min, max) = query.allocation_pools().next()?;
    let pool = pool?;
    let size = size.max(info.size() as u32);
    let mut config = pool.config();
    config.set_params(Some(caps), size, min, max);
    if video_meta && pool.has_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META) {
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
    }
    if let Err(err) = pool.set_config(config) {
        gst::debug!(
            CAT,
            obj = pad,
            "downstream's pool refuses the config: {err}"
        );
        return None;
    }
    if let Err(err) = pool.set_active(true) {
        gst::debug!(CAT, obj = pad, "downstream's pool does not start: {err}");
        return None;
    }
    gst::debug!(
        CAT,
        obj = pad,
        "writing output frames into downstream's pool {pool:?}"
    );
    Some(pool)
}
