// SPDX-License-Identifier: MPL-2.0
//! The `m3ddmoutpaint` element (placeholder until the element lands).

pub fn register(_plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Ok(())
}
