// SPDX-License-Identifier: MPL-2.0
//! Pixels between GStreamer buffers and the engine: the input frame scaled to
//! the canvas content box (packed RGB, what the engine sees) and, when scene
//! cuts are looked for, to the detector's fixed RGB square; and an output
//! frame composed from a generated canvas: its crop scaled to the frame, the
//! source's planes copied bit-exact into their box (or, when downstream fixed
//! a smaller or larger frame, the source scaled straight into its box of that
//! frame: no full-resolution frame in between), the seam feathered outwards.
//! A packed format is composed in its planar twin and packed at the end
//! (`formats.rs`).

use gst_video::prelude::*;

use super::config::{OutputConfig, StreamConfig};
use super::formats::{composing_format, plane_layout, repack_options, with_format};
use super::metas::{Placement, carry_metas};
use crate::engine::compose::{PlaneMut, PlaneRef, blit, feather_seam};
use crate::engine::scene::ANALYSIS_SIDE;
use crate::engine::{Rect, RgbImage};

/// A packed RGB frame of `width × height` with the timing of `like`
/// (the video converter refuses to change framerate or interlacing).
fn rgb_info(
    width: u32,
    height: u32,
    like: &gst_video::VideoInfo,
) -> Result<gst_video::VideoInfo, String> {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .fps(like.fps())
        .interlace_mode(like.interlace_mode())
        .build()
        .map_err(|err| format!("cannot describe a {width}x{height} RGB frame: {err}"))
}

/// A converter between two frame layouts, its lines split over `threads`
/// threads (the result does not depend on the split).
fn converter(
    from: &gst_video::VideoInfo,
    to: &gst_video::VideoInfo,
    mut config: gst_video::VideoConverterConfig,
    threads: u32,
) -> Result<gst_video::VideoConverter, String> {
    config.set_threads(threads.max(1));
    gst_video::VideoConverter::new(from, to, Some(config)).map_err(|err| {
        format!(
            "cannot convert {:?} {}x{} to {:?} {}x{}: {err}",
            from.format(),
            from.width(),
            from.height(),
            to.format(),
            to.width(),
            to.height()
        )
    })
}

/// One input frame as the back-end and the scene-cut detector read it.
pub struct ScaledFrame {
    /// The source scaled to the canvas content box.
    pub content: RgbImage,
    /// The whole source scaled to the detector's `ANALYSIS_SIDE²` square,
    /// when scene cuts are looked for.
    pub cut_image: Option<RgbImage>,
}

/// A converter into packed RGB frames of one size.
struct RgbScaler {
    info: gst_video::VideoInfo,
    converter: gst_video::VideoConverter,
}

impl RgbScaler {
    fn new(
        from: &gst_video::VideoInfo,
        info: gst_video::VideoInfo,
        threads: u32,
    ) -> Result<Self, String> {
        let converter = converter(from, &info, gst_video::VideoConverterConfig::new(), threads)?;
        Ok(RgbScaler { info, converter })
    }

    /// `input` converted.
    fn convert(
        &self,
        input: &gst_video::VideoFrameRef<&gst::BufferRef>,
    ) -> Result<RgbImage, String> {
        let scratch = gst::Buffer::with_size(self.info.size())
            .map_err(|err| format!("cannot allocate a scaled frame: {err}"))?;
        let mut scratch = gst_video::VideoFrame::from_buffer_writable(scratch, &self.info)
            .map_err(|_| "cannot map a scaled frame".to_string())?;
        self.converter
            .frame_ref(input, &mut scratch.as_mut_video_frame_ref());
        let (width, height) = (self.info.width(), self.info.height());
        let row_bytes = width as usize * 3;
        let stride = scratch.plane_stride()[0] as usize;
        let plane = scratch.plane_data(0).map_err(|err| err.to_string())?;
        let mut data = Vec::with_capacity(row_bytes * height as usize);
        for row in plane.chunks(stride).take(height as usize) {
            data.extend_from_slice(&row[..row_bytes]);
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }
}

/// Scales input frames to the content box of the canvas, as packed RGB, and
/// (for the scene-cut detector) to a fixed square.
pub struct ContentScaler {
    in_info: gst_video::VideoInfo,
    content: RgbScaler,
    cut_image: Option<RgbScaler>,
}

impl ContentScaler {
    /// With `detects_cuts`, each frame also gets its square for the detector;
    /// the converters use `threads` threads.
    pub fn new(
        config: &StreamConfig,
        detects_cuts: bool,
        threads: u32,
    ) -> Result<ContentScaler, String> {
        let content = config.canvas.content;
        let content_info = rgb_info(content.width(), content.height(), &config.in_info)?;
        let cut_image = if detects_cuts {
            let side = ANALYSIS_SIDE as u32;
            let info = rgb_info(side, side, &config.in_info)?;
            Some(RgbScaler::new(&config.in_info, info, threads)?)
        } else {
            None
        };
        Ok(ContentScaler {
            in_info: config.in_info.clone(),
            content: RgbScaler::new(&config.in_info, content_info, threads)?,
            cut_image,
        })
    }

    /// The content image of one input buffer (and its square for the detector).
    pub fn scale(&self, input: &gst::BufferRef) -> Result<ScaledFrame, String> {
        let input = map_input(input, &self.in_info)?;
        let content = self.content.convert(&input)?;
        let cut_image = match &self.cut_image {
            Some(scaler) => Some(scaler.convert(&input)?),
            None => None,
        };
        Ok(ScaledFrame { content, cut_image })
    }
}

/// A lossless conversion between a packed format and its planar twin.
struct Repacker {
    to: gst_video::VideoInfo,
    converter: gst_video::VideoConverter,
}

impl Repacker {
    /// A repacker from `from` to its format `format`, or `None` when they are the same.
    fn between(
        from: &gst_video::VideoInfo,
        format: gst_video::VideoFormat,
        threads: u32,
    ) -> Result<Option<Repacker>, String> {
        if from.format() == format {
            return Ok(None);
        }
        let to = with_format(from, format)?;
        let converter = converter(from, &to, repack_options(), threads)?;
        Ok(Some(Repacker { to, converter }))
    }

    /// `frame` repacked, into a buffer of `pool` when given.
    fn repack(
        &self,
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
        pool: Option<&gst::BufferPool>,
    ) -> Result<gst_video::VideoFrame<gst_video::video_frame::Writable>, String> {
        let mut out = match pool {
            Some(pool) => pooled_frame(pool, &self.to)?,
            None => new_frame(&self.to)?,
        };
        self.converter
            .frame_ref(frame, &mut out.as_mut_video_frame_ref());
        Ok(out)
    }
}

/// `input` mapped readable as a frame of `info` (the negotiated caps), or a
/// sentence saying that it does not hold one.
pub fn map_input<'a>(
    input: &'a gst::BufferRef,
    info: &gst_video::VideoInfo,
) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, String> {
    gst_video::VideoFrameRef::from_buffer_ref_readable(input, info).map_err(|_| {
        format!(
            "an input buffer of {} bytes does not hold a frame of the negotiated caps",
            input.size()
        )
    })
}

/// A new writable frame of `info`.
fn new_frame(
    info: &gst_video::VideoInfo,
) -> Result<gst_video::VideoFrame<gst_video::video_frame::Writable>, String> {
    let buffer = gst::Buffer::with_size(info.size())
        .map_err(|err| format!("cannot allocate a {:?} frame: {err}", info.format()))?;
    gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| format!("cannot map a {:?} frame", info.format()))
}

/// A writable frame of `info` in a buffer of downstream's `pool`.
fn pooled_frame(
    pool: &gst::BufferPool,
    info: &gst_video::VideoInfo,
) -> Result<gst_video::VideoFrame<gst_video::video_frame::Writable>, String> {
    let buffer = pool
        .acquire_buffer(None)
        .map_err(|err| format!("downstream's buffer pool gives no buffer: {err:?}"))?;
    gst_video::VideoFrame::from_buffer_writable(buffer, info).map_err(|_| {
        format!(
            "cannot map a {:?} frame of downstream's pool",
            info.format()
        )
    })
}

/// Builds output frames from generated canvases and the input buffers.
pub struct Compositor {
    in_info: gst_video::VideoInfo,
    /// The frame composed: the output's, or its planar twin's.
    work_info: gst_video::VideoInfo,
    canvas_info: gst_video::VideoInfo,
    /// Scales the canvas's output crop to the whole output frame.
    converter: gst_video::VideoConverter,
    /// Scales the source into its box of the output frame, when its size differs.
    source_scaler: Option<gst_video::VideoConverter>,
    /// The input in the composing format, for a packed format.
    unpacker: Option<Repacker>,
    /// The composed frame in the output's format, for a packed format.
    packer: Option<Repacker>,
    source: Rect,
    feather: u32,
}

impl Compositor {
    /// The compositor of one output of `in_info`'s frames; its converters use `threads` threads.
    pub fn new(
        in_info: &gst_video::VideoInfo,
        output: &OutputConfig,
        feather: u32,
        threads: u32,
    ) -> Result<Compositor, String> {
        let side = output.layout.canvas;
        let work_info = with_format(&output.out_info, composing_format(output.out_info.format()))?;
        let packer = Repacker::between(&work_info, output.out_info.format(), threads)?;
        let canvas_info = rgb_info(side, side, &work_info)?;
        let crop = output.layout.output_crop;
        let mut options = gst_video::VideoConverterConfig::new();
        options.set_src_x(crop.x0 as i32);
        options.set_src_y(crop.y0 as i32);
        options.set_src_width(Some(crop.width() as i32));
        options.set_src_height(Some(crop.height() as i32));
        // Bilinear, as OpenCV's INTER_LINEAR of the official code: the band is
        // smooth generated content, and at 1080p → 9:16 this halves the cost of
        // the largest step of a frame (a 2-level difference from bicubic).
        options.set_resampler_method(gst_video::VideoResamplerMethod::Linear);
        let crop_converter = converter(&canvas_info, &work_info, options, threads)?;
        let source = output.output.source;
        let mut unpacker = None;
        let source_scaler = if output.scales_source(in_info) {
            let mut options = gst_video::VideoConverterConfig::new();
            options.set_dest_x(source.x0 as i32);
            options.set_dest_y(source.y0 as i32);
            options.set_dest_width(Some(source.width() as i32));
            options.set_dest_height(Some(source.height() as i32));
            options.set_fill_border(false);
            Some(converter(in_info, &work_info, options, threads)?)
        } else {
            unpacker = Repacker::between(in_info, work_info.format(), threads)?;
            None
        };
        Ok(Compositor {
            in_info: in_info.clone(),
            work_info,
            canvas_info,
            converter: crop_converter,
            source_scaler,
            unpacker,
            packer,
            source,
            feather,
        })
    }

    /// The output frame of `input` whose new area comes from `canvas`, in a
    /// buffer of `pool` when given; it carries the input's timestamps,
    /// duration, flags and metas (`metas.rs`).
    pub fn compose(
        &self,
        canvas: &RgbImage,
        input: &gst::BufferRef,
        pool: Option<&gst::BufferPool>,
    ) -> Result<gst::Buffer, String> {
        let side = self.canvas_info.width();
        if canvas.width != side
            || canvas.height != side
            || canvas.data.len() != (side * side * 3) as usize
        {
            return Err(format!(
                "the engine returned a {}x{} canvas ({} bytes) where {side}x{side} RGB was expected",
                canvas.width,
                canvas.height,
                canvas.data.len()
            ));
        }
        let canvas_frame = self.canvas_frame(canvas)?;
        let mut output = match (&self.packer, pool) {
            (None, Some(pool)) => pooled_frame(pool, &self.work_info)?,
            _ => new_frame(&self.work_info)?,
        };
        self.converter.frame(&canvas_frame, &mut output);

        let source = map_input(input, &self.in_info)?;
        if let Some(scaler) = &self.source_scaler {
            scaler.frame_ref(&source, &mut output.as_mut_video_frame_ref());
        }
        let unpacked = match &self.unpacker {
            Some(unpacker) => Some(unpacker.repack(&source, None)?),
            None => None,
        };
        let source = match &unpacked {
            Some(frame) => frame.as_video_frame_ref(),
            None => source,
        };
        for plane in 0..self.work_info.n_planes() {
            self.paste_plane(&source, &mut output, plane)?;
        }
        let mut output = match &self.packer {
            Some(packer) => packer.repack(&output.as_video_frame_ref(), pool)?,
            None => output,
        }
        .into_buffer();
        input
            .copy_into(
                output.make_mut(),
                gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS,
                ..,
            )
            .map_err(|err| format!("cannot copy the input's timestamps: {err}"))?;
        let placement = Placement {
            input: (self.in_info.width(), self.in_info.height()),
            output: (self.work_info.width(), self.work_info.height()),
            source: self.source,
        };
        carry_metas(input, output.make_mut(), &placement);
        Ok(output)
    }

    fn canvas_frame(
        &self,
        canvas: &RgbImage,
    ) -> Result<gst_video::VideoFrame<gst_video::video_frame::Readable>, String> {
        let buffer = gst::Buffer::with_size(self.canvas_info.size())
            .map_err(|err| format!("cannot allocate a canvas frame: {err}"))?;
        let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, &self.canvas_info)
            .map_err(|_| "cannot map a canvas frame".to_string())?;
        let row_bytes = canvas.width as usize * 3;
        let stride = frame.plane_stride()[0] as usize;
        let plane = frame.plane_data_mut(0).map_err(|err| err.to_string())?;
        for (dst, src) in plane.chunks_mut(stride).zip(canvas.data.chunks(row_bytes)) {
            dst[..row_bytes].copy_from_slice(src);
        }
        gst_video::VideoFrame::from_buffer_readable(frame.into_buffer(), &self.canvas_info)
            .map_err(|_| "cannot map a canvas frame".to_string())
    }

    /// Copies one plane of the source into its box (unless it was scaled
    /// there), then feathers the seam.
    fn paste_plane(
        &self,
        source: &gst_video::VideoFrameRef<&gst::BufferRef>,
        output: &mut gst_video::VideoFrame<gst_video::video_frame::Writable>,
        plane: u32,
    ) -> Result<(), String> {
        let layout = plane_layout(self.work_info.format(), plane)?;
        let (w_sub, h_sub, bytes_per_pixel) = (layout.w_sub, layout.h_sub, layout.bytes_per_pixel);
        let scaled = |value: u32, sub: u32| value.div_ceil(1 << sub);
        let plane_box = Rect::at(
            self.source.x0 >> w_sub,
            self.source.y0 >> h_sub,
            scaled(self.source.width(), w_sub),
            scaled(self.source.height(), h_sub),
        );
        let plane_width = scaled(self.work_info.width(), w_sub);
        let plane_height = scaled(self.work_info.height(), h_sub);
        if plane_box.x1 > plane_width || plane_box.y1 > plane_height {
            return Err(format!(
                "the source box {:?} leaves plane {plane} of the output",
                self.source
            ));
        }

        let out_stride = output.plane_stride()[plane as usize] as usize;
        let mut plane_mut = PlaneMut {
            data: output
                .plane_data_mut(plane)
                .map_err(|err| err.to_string())?,
            stride: out_stride,
            width: plane_width,
            height: plane_height,
            bytes_per_pixel,
            sample: layout.sample,
        };
        if self.source_scaler.is_none() {
            let source_plane = PlaneRef {
                data: source.plane_data(plane).map_err(|err| err.to_string())?,
                stride: source.plane_stride()[plane as usize] as usize,
                width: plane_box.width(),
                height: plane_box.height(),
                bytes_per_pixel,
            };
            blit(&mut plane_mut, &source_plane, plane_box.x0, plane_box.y0)
                .map_err(|err| err.to_string())?;
        }
        feather_seam(
            &mut plane_mut,
            plane_box,
            scaled(self.feather, w_sub.max(h_sub)),
        );
        Ok(())
    }
}
