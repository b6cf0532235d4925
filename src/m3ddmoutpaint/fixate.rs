// SPDX-License-Identifier: MPL-2.0
//! The output frame an output takes when its downstream refuses the
//! full-resolution one: the size and pixel-aspect-ratio chosen the way
//! `videoconvertscale` chooses them, keeping the output's *display* aspect
//! (`aspect`, or the `expand` frame's): a fixed width and height take the
//! pixel-aspect-ratio that makes them display at that aspect (or the input's,
//! or square pixels, whichever downstream takes); a fixed side, or a fixed
//! pixel-aspect-ratio alone, gives the other side from the display aspect.

use gst::prelude::*;

use super::config::{FixedFrame, fraction, pixel_aspect, reduced};
use crate::engine::Ratio;
use crate::engine::limits::{MAX_OUTPUT_SIDE, MIN_FRAME_SIDE};

/// What the element would output at full resolution, and what it must keep.
#[derive(Debug, Clone, Copy)]
pub struct Natural<'a> {
    /// The full-resolution output caps.
    pub caps: &'a gst::Caps,
    /// Their size, and the input's (and their) pixel-aspect-ratio.
    pub size: (u32, u32),
    pub par: Ratio,
    /// The display aspect the output must keep.
    pub display: Ratio,
    /// Width and height must be multiples of this.
    pub align: u32,
}

/// The frame downstream fixes: `None` when it takes the full-resolution caps
/// (or no frame of its caps can be made), else the first frame its caps allow.
pub fn downstream_frame(downstream: &gst::Caps, natural: &Natural) -> Option<FixedFrame> {
    if downstream.is_any() || downstream.can_intersect(natural.caps) {
        return None;
    }
    downstream
        .iter()
        .find_map(|structure| fixate(structure, natural))
}

/// The frame one downstream structure allows.
fn fixate(structure: &gst::StructureRef, natural: &Natural) -> Option<FixedFrame> {
    let fixed_side = |name: &str| {
        let side = u32::try_from(structure.get::<i32>(name).ok()?).ok()?;
        (MIN_FRAME_SIDE..=MAX_OUTPUT_SIDE)
            .contains(&side)
            .then_some(side)
    };
    let accepts = |par: Ratio| match (structure.value("pixel-aspect-ratio"), fraction(par)) {
        (Err(_), _) => true,
        (Ok(allowed), Ok(par)) => allowed.can_intersect(&par.to_send_value()),
        (Ok(_), Err(_)) => false,
    };
    let fixed_par = structure
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .ok()
        .map(pixel_aspect);
    let pick = |preferred: &[Ratio]| {
        fixed_par.or_else(|| preferred.iter().copied().find(|&par| accepts(par)))
    };
    let square = Ratio { num: 1, den: 1 };
    let display = natural.display;
    let (d_num, d_den) = (u64::from(display.num), u64::from(display.den));
    let frame = match (fixed_side("width"), fixed_side("height")) {
        (Some(width), Some(height)) => {
            // The pixel-aspect-ratio that shows width × height at the display aspect.
            let exact = reduced(d_num * u64::from(height), d_den * u64::from(width));
            let preferred: Vec<Ratio> = exact.into_iter().chain([natural.par, square]).collect();
            FixedFrame {
                width,
                height,
                par: pick(&preferred)?,
            }
        }
        (Some(width), None) => {
            let par = pick(&[natural.par, square])?;
            let height = side_for(
                u64::from(width) * u64::from(par.num) * d_den,
                u64::from(par.den) * d_num,
                natural.align,
            )?;
            FixedFrame { width, height, par }
        }
        (None, Some(height)) => {
            let par = pick(&[natural.par, square])?;
            let width = side_for(
                u64::from(height) * d_num * u64::from(par.den),
                d_den * u64::from(par.num),
                natural.align,
            )?;
            FixedFrame { width, height, par }
        }
        (None, None) => {
            // Only the pixel-aspect-ratio is fixed: the height kept, the width
            // scaled to keep the display size (as videoconvertscale does).
            let par = pick(&[natural.par, square])?;
            let (width, height) = natural.size;
            let width = side_for(
                u64::from(width) * u64::from(natural.par.num) * u64::from(par.den),
                u64::from(natural.par.den) * u64::from(par.num),
                natural.align,
            )?;
            FixedFrame { width, height, par }
        }
    };
    Some(frame)
}

/// `num / den` rounded to the nearest multiple of `align`, when it is a side
/// the element can make.
fn side_for(num: u64, den: u64, align: u32) -> Option<u32> {
    let align = u64::from(align.max(1));
    let side = (num + den * align / 2) / (den * align) * align;
    let side = u32::try_from(side.max(align)).ok()?;
    (MIN_FRAME_SIDE..=MAX_OUTPUT_SIDE)
        .contains(&side)
        .then_some(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    /// 720×576 at PAR 64/45 (16:9 PAL) grown to 9:16: 720×1820 at 64/45.
    fn pal_to_portrait(caps: &gst::Caps) -> Natural<'_> {
        Natural {
            caps,
            size: (720, 1820),
            par: Ratio { num: 64, den: 45 },
            display: Ratio { num: 9, den: 16 },
            align: 2,
        }
    }

    fn natural_caps() -> gst::Caps {
        "video/x-raw,format=I420,width=720,height=1820,pixel-aspect-ratio=64/45"
            .parse()
            .unwrap()
    }

    fn frame(downstream: &str) -> Option<FixedFrame> {
        init();
        let caps = natural_caps();
        downstream_frame(&downstream.parse().unwrap(), &pal_to_portrait(&caps))
    }

    #[test]
    fn downstream_that_takes_the_full_resolution_fixes_nothing() {
        assert_eq!(
            frame("video/x-raw,format=I420,width=[1,4000],height=[1,4000]"),
            None
        );
        init();
        let caps = natural_caps();
        assert_eq!(
            downstream_frame(&gst::Caps::new_any(), &pal_to_portrait(&caps)),
            None
        );
    }

    #[test]
    fn a_fixed_size_takes_the_pixel_aspect_that_shows_the_aspect() {
        let square = Ratio { num: 1, den: 1 };
        for downstream in [
            "video/x-raw,width=1080,height=1920",
            "video/x-raw,width=1080,height=1920,pixel-aspect-ratio=1/1",
            "video/x-raw,width=1080,height=1920,pixel-aspect-ratio=[1/100,100/1]",
        ] {
            assert_eq!(
                frame(downstream),
                Some(FixedFrame {
                    width: 1080,
                    height: 1920,
                    par: square
                }),
                "{downstream}"
            );
        }
        // 720×1280 shows 9:16 only with 1/1; 4/3 pixels make it 3:4 (downstream's choice).
        assert_eq!(
            frame("video/x-raw,width=720,height=1280,pixel-aspect-ratio=4/3").map(|f| f.par),
            Some(Ratio { num: 4, den: 3 })
        );
    }

    #[test]
    fn one_fixed_side_gives_the_other_from_the_display_aspect() {
        // The input's 64/45 pixels are kept where downstream allows them.
        assert_eq!(
            frame("video/x-raw,width=1080"),
            Some(FixedFrame {
                width: 1080,
                height: 2730,
                par: Ratio { num: 64, den: 45 }
            })
        );
        assert_eq!(
            frame("video/x-raw,height=1920,pixel-aspect-ratio=1/1"),
            Some(FixedFrame {
                width: 1080,
                height: 1920,
                par: Ratio { num: 1, den: 1 }
            })
        );
    }

    #[test]
    fn square_pixels_alone_widen_the_frame() {
        // 720 pixels of 64/45 are 1024 square ones.
        assert_eq!(
            frame("video/x-raw,pixel-aspect-ratio=1/1"),
            Some(FixedFrame {
                width: 1024,
                height: 1820,
                par: Ratio { num: 1, den: 1 }
            })
        );
    }
}
