// SPDX-License-Identifier: MPL-2.0
//! The formats the element takes and how an output frame of each is composed.
//!
//! The output has the input's format. The model always works on an 8-bit RGB
//! canvas; GStreamer's video converter writes the generated area into the
//! output's own format and depth, and the source's planes are copied into
//! their box sample for sample (`frames.rs`). Planar and semi-planar formats
//! (8, 10 and 12 bits, 4:2:0, 4:2:2 and 4:4:4, planar RGB) are composed in
//! themselves. The packed 4:2:2 formats, whose pixels share bytes (UYVY and
//! YUY2: two pixels in four bytes; v210: six pixels in sixteen), are composed
//! in their planar twin of the same depth and chroma sampling (Y42B, I422_10LE)
//! and packed by the converter without resampling, dithering or a matrix, which
//! moves samples unchanged: so the source's offset only has to fall on a chroma
//! pair (every format's offsets and sizes are multiples of its subsampling,
//! [`size_alignment`]), not on a v210 group, and a source whose width is not a
//! multiple of six keeps every sample of its last v210 group.

use gst_video::{VideoFormat, VideoTransferFunction};

use crate::engine::compose::Sample;

/// The formats handled, in order of preference; the output has the input's format.
pub const FORMATS: [VideoFormat; 22] = [
    VideoFormat::Rgb,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
    VideoFormat::Y42b,
    VideoFormat::Nv16,
    VideoFormat::Y444,
    VideoFormat::Uyvy,
    VideoFormat::Yuy2,
    VideoFormat::Gbr,
    VideoFormat::Gbra,
    VideoFormat::I42010le,
    VideoFormat::I42012le,
    VideoFormat::P01010le,
    VideoFormat::P012Le,
    VideoFormat::I42210le,
    VideoFormat::I42212le,
    VideoFormat::V210,
    VideoFormat::Y44410le,
    VideoFormat::Y44412le,
];

/// Width, height and the source's offset in the output are multiples of this:
/// the format's largest chroma subsampling (2 for 4:2:0 and 4:2:2, 1 for 4:4:4
/// and RGB), so that no chroma sample covers both source and generated pixels
/// on the source's top and left edges.
pub fn size_alignment(format: VideoFormat) -> u32 {
    let info = gst_video::VideoFormatInfo::from_format(format);
    let sub = (0..info.n_components() as usize)
        .map(|c| info.w_sub()[c].max(info.h_sub()[c]))
        .max()
        .unwrap_or(0);
    1 << sub
}

pub fn names_of_formats() -> String {
    FORMATS
        .iter()
        .map(|f| f.to_str().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The format an output of `format` is composed in: the planar twin of a
/// packed 4:2:2 format, else the format itself.
pub fn composing_format(format: VideoFormat) -> VideoFormat {
    match format {
        VideoFormat::Uyvy | VideoFormat::Yuy2 => VideoFormat::Y42b,
        VideoFormat::V210 => VideoFormat::I42210le,
        other => other,
    }
}

/// `info` with `format` (same size, framerate, colorimetry and chroma siting).
pub fn with_format(
    info: &gst_video::VideoInfo,
    format: VideoFormat,
) -> Result<gst_video::VideoInfo, String> {
    if info.format() == format {
        return Ok(info.clone());
    }
    gst_video::VideoInfo::builder(format, info.width(), info.height())
        .fps(info.fps())
        .par(info.par())
        .interlace_mode(info.interlace_mode())
        .colorimetry(&info.colorimetry())
        .chroma_site(info.chroma_site())
        .build()
        .map_err(|err| format!("cannot describe a {format:?} frame: {err}"))
}

/// Converter options that move samples between a packed format and its
/// planar twin unchanged: no chroma resampling, dithering, matrix, transfer
/// or primaries conversion.
pub fn repack_options() -> gst_video::VideoConverterConfig {
    let mut options = gst_video::VideoConverterConfig::new();
    options.set_dither_method(gst_video::VideoDitherMethod::None);
    options.set_chroma_mode(gst_video::VideoChromaMode::None);
    options.set_matrix_mode(gst_video::VideoMatrixMode::None);
    options.set_gamma_mode(gst_video::VideoGammaMode::None);
    options.set_primaries_mode(gst_video::VideoPrimariesMode::None);
    options
}

/// How one plane of a planar or semi-planar `format` stores its pixels: bytes
/// per pixel, horizontal and vertical subsampling, and its samples.
pub struct PlaneLayout {
    pub bytes_per_pixel: usize,
    pub w_sub: u32,
    pub h_sub: u32,
    pub sample: Sample,
}

pub fn plane_layout(format: VideoFormat, plane: u32) -> Result<PlaneLayout, String> {
    let info = gst_video::VideoFormatInfo::from_format(format);
    // The first component stored in this plane gives its subsampling and pixel size.
    let component = (0..info.n_components() as usize)
        .find(|&c| info.plane()[c] == plane)
        .ok_or_else(|| format!("plane {plane} of {format:?} holds no component"))?;
    let sample = match info.depth()[component] {
        0..=8 => Sample::U8,
        _ => Sample::U16Le {
            shift: info.shift()[component],
        },
    };
    Ok(PlaneLayout {
        bytes_per_pixel: usize::try_from(info.pixel_stride()[component])
            .map_err(|_| format!("{format:?} has no pixel stride"))?,
        w_sub: info.w_sub()[component],
        h_sub: info.h_sub()[component],
        sample,
    })
}

/// The name of a high-dynamic-range transfer (PQ or HLG) of `info`, whose
/// coded values the 8-bit RGB canvas takes as they are (as SDR).
pub fn hdr_transfer(info: &gst_video::VideoInfo) -> Option<&'static str> {
    match info.colorimetry().transfer() {
        VideoTransferFunction::Smpte2084 => Some("PQ (SMPTE ST 2084)"),
        VideoTransferFunction::AribStdB67 => Some("HLG (ARIB STD-B67)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m3ddmoutpaint::test_support::patterned_frame;
    use gst_video::prelude::*;

    /// The bytes of every plane's pixels, row by row (not the rows' padding).
    fn samples(info: &gst_video::VideoInfo, buffer: &gst::Buffer) -> Vec<u8> {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info).unwrap();
        let mut bytes = Vec::new();
        for plane in 0..frame.n_planes() {
            let layout = plane_layout(info.format(), plane).unwrap();
            let row = info.width().div_ceil(1 << layout.w_sub) as usize * layout.bytes_per_pixel;
            let stride = frame.plane_stride()[plane as usize] as usize;
            for line in frame.plane_data(plane).unwrap().chunks(stride) {
                bytes.extend_from_slice(&line[..row]);
            }
        }
        bytes
    }

    fn converted(
        from: &gst_video::VideoInfo,
        to: &gst_video::VideoInfo,
        buffer: &gst::Buffer,
    ) -> gst::Buffer {
        let converter = gst_video::VideoConverter::new(from, to, Some(repack_options())).unwrap();
        let input = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), from).unwrap();
        let mut output = gst_video::VideoFrame::from_buffer_writable(
            gst::Buffer::with_size(to.size()).unwrap(),
            to,
        )
        .unwrap();
        converter.frame(&input, &mut output);
        output.into_buffer()
    }

    #[test]
    fn packed_formats_round_trip_through_their_planar_twin() {
        gst::init().unwrap();
        // 26 pixels: four full v210 groups and a partial one; odd for the 4:2:2 pairs too.
        for width in [26, 27] {
            for format in [VideoFormat::Uyvy, VideoFormat::Yuy2, VideoFormat::V210] {
                let twin = composing_format(format);
                assert_ne!(twin, format);
                let info = gst_video::VideoInfo::builder(twin, width, 5)
                    .build()
                    .unwrap();
                let packed_info = with_format(&info, format).unwrap();
                // Every sample a function of its place (packed twice below to
                // set v210's padding bits as the packer does).
                let planar = patterned_frame(&info, |plane, x, y| {
                    ((x * 37 + y * 11 + plane * 7) % 253) as u8
                });
                // The twin's 10-bit samples are held within their depth by packing once.
                let planar = converted(
                    &packed_info,
                    &info,
                    &converted(&info, &packed_info, &planar),
                );
                let repacked = converted(
                    &packed_info,
                    &info,
                    &converted(&info, &packed_info, &planar),
                );
                let (a, b) = (samples(&info, &planar), samples(&info, &repacked));
                assert!(a == b, "{format:?} {width} wide");
                assert!(a.iter().any(|&v| v > 3), "{format:?}: a blank frame");
            }
        }
    }

    #[test]
    fn alignment_is_the_chroma_subsampling() {
        gst::init().unwrap();
        let expected = [
            (VideoFormat::Rgb, 1),
            (VideoFormat::Gbra, 1),
            (VideoFormat::Y44410le, 1),
            (VideoFormat::I420, 2),
            (VideoFormat::P012Le, 2),
            (VideoFormat::Nv16, 2),
            (VideoFormat::Uyvy, 2),
            (VideoFormat::V210, 2),
        ];
        for (format, align) in expected {
            assert_eq!(size_alignment(format), align, "{format:?}");
        }
    }

    #[test]
    fn every_composing_format_has_plain_planes() {
        gst::init().unwrap();
        for format in FORMATS {
            let twin = composing_format(format);
            let info = gst_video::VideoFormatInfo::from_format(twin);
            for plane in 0..info.n_planes() {
                let layout = plane_layout(twin, plane).unwrap();
                assert!(layout.bytes_per_pixel > 0, "{format:?} plane {plane}");
            }
        }
        let p010 = plane_layout(VideoFormat::P01010le, 1).unwrap();
        assert_eq!(p010.sample, Sample::U16Le { shift: 6 });
        assert_eq!((p010.bytes_per_pixel, p010.w_sub, p010.h_sub), (4, 1, 1));
    }
}
