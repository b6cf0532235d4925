// SPDX-License-Identifier: MPL-2.0
//! The request source pads `src_%u`: each one more output of the same stream
//! at its own display aspect ratio (`aspect`, a pad property, settable from
//! gst-launch as `m3ddmoutpaint name=o src_0::aspect=9/16`), cropped from the
//! canvas all outputs share, so N outputs cost one diffusion run.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::engine::Ratio;
use crate::engine::limits::{DEFAULT_ASPECT, MAX_ASPECT_TERM};

glib::wrapper! {
    pub struct OutputPad(ObjectSubclass<imp::OutputPad>) @extends gst::Pad, gst::Object;
}

impl OutputPad {
    /// The pad's display aspect ratio.
    pub fn aspect(&self) -> Result<Ratio, String> {
        let aspect = self.property::<gst::Fraction>("aspect");
        let (num, den) = (aspect.numer(), aspect.denom());
        match (u32::try_from(num), u32::try_from(den)) {
            (Ok(num), Ok(den)) if num > 0 && den > 0 => Ok(Ratio { num, den }),
            _ => Err(format!(
                "{}::aspect {num}/{den} must be a positive fraction",
                self.name()
            )),
        }
    }
}

/// The number in a request pad's name (`src_12` → 12), for their order.
pub fn pad_number(name: &str) -> u32 {
    name.rsplit('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

/// The default aspect of a new output pad (the element's default).
fn default_aspect() -> gst::Fraction {
    let (num, den) = DEFAULT_ASPECT;
    gst::Fraction::new(num as i32, den as i32)
}

mod imp {
    use std::sync::{LazyLock, Mutex};

    use super::*;

    pub struct OutputPad {
        aspect: Mutex<gst::Fraction>,
    }

    impl Default for OutputPad {
        fn default() -> Self {
            OutputPad {
                aspect: Mutex::new(default_aspect()),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for OutputPad {
        const NAME: &'static str = "GstM3ddmOutputPad";
        type Type = super::OutputPad;
        type ParentType = gst::Pad;
    }

    impl ObjectImpl for OutputPad {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                let term = MAX_ASPECT_TERM as i32;
                vec![
                    gst::ParamSpecFraction::builder("aspect")
                        .nick("Aspect ratio")
                        .blurb(
                            "Display aspect ratio (width/height) of this output; read when the \
                            stream's caps are set (a change applies at the next caps)",
                        )
                        .minimum(gst::Fraction::new(1, term))
                        .maximum(gst::Fraction::new(term, 1))
                        .default_value(default_aspect())
                        .mutable_playing()
                        .build(),
                ]
            });
            PROPERTIES.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            if pspec.name() == "aspect" {
                *self.aspect.lock().unwrap() = value.get().expect("type checked upstream");
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            match pspec.name() {
                "aspect" => self.aspect.lock().unwrap().to_value(),
                other => unreachable!("no property {other}"),
            }
        }
    }

    impl GstObjectImpl for OutputPad {}
    impl PadImpl for OutputPad {}
}
