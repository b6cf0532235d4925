// SPDX-License-Identifier: MPL-2.0
//! What the element's unit tests share: a frame filled plane by plane with a
//! pattern of each byte's place.

use gst_video::prelude::*;

/// A frame of `info` whose every byte, padding included, is
/// `pattern(plane, x, y)` (`x` the byte's offset in its row).
pub fn patterned_frame(
    info: &gst_video::VideoInfo,
    pattern: impl Fn(usize, usize, usize) -> u8,
) -> gst::Buffer {
    let mut frame = gst_video::VideoFrame::from_buffer_writable(
        gst::Buffer::with_size(info.size()).unwrap(),
        info,
    )
    .unwrap();
    for plane in 0..frame.n_planes() {
        let stride = frame.plane_stride()[plane as usize] as usize;
        for (y, row) in frame
            .plane_data_mut(plane)
            .unwrap()
            .chunks_mut(stride)
            .enumerate()
        {
            for (x, byte) in row.iter_mut().enumerate() {
                *byte = pattern(plane as usize, x, y);
            }
        }
    }
    frame.into_buffer()
}
