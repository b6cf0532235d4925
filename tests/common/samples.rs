// SPDX-License-Identifier: MPL-2.0
//! Frames read sample by sample in any format: GStreamer's own unpacking
//! (`VideoFormatInfo::unpack`) turns every row into four components per pixel
//! (AYUV/ARGB, 8 or 16 bits; subsampled chroma repeated over the pixels it
//! covers; 10- and 12-bit values widened without loss), so one comparison
//! serves packed, planar, semi-planar and v210 frames, every sample included.

use gst_video::prelude::*;

/// Every pixel of a frame as four components (A, then Y U V or R G B).
pub struct Unpacked {
    pub width: u32,
    pub height: u32,
    /// The largest component value (255 or 65535).
    pub max: u32,
    pixels: Vec<[u32; 4]>,
}

impl Unpacked {
    pub fn of(info: &gst_video::VideoInfo, buffer: &gst::BufferRef) -> Unpacked {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).unwrap();
        let finfo = info.format_info();
        let wide = finfo.bits() > 8;
        let (width, height) = (info.width(), info.height());
        // gstreamer-rs checks every plane's length against the luma row index:
        // subsampled planes are copied with room for that check.
        let owned: Vec<Vec<u8>> = (0..frame.n_planes())
            .map(|p| {
                let mut plane = frame.plane_data(p).unwrap().to_vec();
                let room = (height as usize + 1) * frame.plane_stride()[p as usize] as usize;
                plane.resize(plane.len().max(room), 0);
                plane
            })
            .collect();
        let planes: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let bytes = if wide { 8 } else { 4 };
        let mut row = vec![0u8; width as usize * bytes];
        let mut pixels = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            finfo.unpack(
                gst_video::VideoPackFlags::empty(),
                &mut row,
                &planes,
                frame.plane_stride(),
                0,
                y as i32,
                width as i32,
            );
            pixels.extend(row.chunks(bytes).map(|px| {
                std::array::from_fn(|c| match wide {
                    true => u16::from_ne_bytes([px[2 * c], px[2 * c + 1]]) as u32,
                    false => px[c] as u32,
                })
            }));
        }
        Unpacked {
            width,
            height,
            max: if wide { 65535 } else { 255 },
            pixels,
        }
    }

    pub fn at(&self, x: u32, y: u32) -> [u32; 4] {
        self.pixels[(y * self.width + x) as usize]
    }

    /// Where `source` lies in this frame, sample for sample, if anywhere.
    pub fn find(&self, source: &Unpacked) -> Option<(u32, u32)> {
        let xs = 0..=self.width.checked_sub(source.width)?;
        let ys = 0..=self.height.checked_sub(source.height)?;
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .find(|&at| self.holds(source, at))
    }

    /// True when every sample of `source` is in this frame at `at`.
    pub fn holds(&self, source: &Unpacked, (x0, y0): (u32, u32)) -> bool {
        let len = source.width as usize;
        (0..source.height).all(|y| {
            let here = ((y0 + y) * self.width + x0) as usize;
            let there = (y * source.width) as usize;
            self.pixels[here..here + len] == source.pixels[there..there + len]
        })
    }

    /// The pixels at least `margin` pixels away from the box of `size` at `at`.
    pub fn outside(&self, at: (u32, u32), size: (u32, u32), margin: u32) -> Vec<[u32; 4]> {
        let near = |v: u32, start: u32, len: u32| v + margin >= start && v < start + len + margin;
        (0..self.height)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| !(near(x, at.0, size.0) && near(y, at.1, size.1)))
            .map(|(x, y)| self.at(x, y))
            .collect()
    }

    /// The mean of component `c` over the box of `size` at `at`, as a fraction of `max`.
    pub fn mean_in(&self, at: (u32, u32), size: (u32, u32), c: usize) -> f64 {
        let sum: u64 = (at.1..at.1 + size.1)
            .flat_map(|y| (at.0..at.0 + size.0).map(move |x| (x, y)))
            .map(|(x, y)| self.at(x, y)[c] as u64)
            .sum();
        sum as f64 / (size.0 * size.1) as f64 / self.max as f64
    }
}

/// The mean of component `c` of `pixels`, as a fraction of `max`.
pub fn mean_of(pixels: &[[u32; 4]], c: usize, max: u32) -> f64 {
    pixels.iter().map(|p| p[c] as f64).sum::<f64>() / pixels.len() as f64 / max as f64
}
