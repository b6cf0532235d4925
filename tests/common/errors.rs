// SPDX-License-Identifier: MPL-2.0
//! The error an element posts when it refuses to start (NULL→READY) or refuses
//! caps, for the tests that assert its sentence.

use gst::prelude::*;

use super::{element, harness};

/// A new element with these properties whose NULL→READY failed (asserted),
/// and the bus its messages went to.
pub fn refused_at_ready(properties: &[(&str, &str)]) -> (gst::Element, gst::Bus) {
    let element = element(properties);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(
        element.set_state(gst::State::Ready).is_err(),
        "READY must fail with {properties:?}"
    );
    (element, bus)
}

/// The error of a failing NULL→READY of a new element with these properties.
pub fn ready_error(properties: &[(&str, &str)]) -> gst::glib::Error {
    let (element, bus) = refused_at_ready(properties);
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let _ = element.set_state(gst::State::Null);
    error_of(&msg)
}

/// The error a harness around an element with these properties posts when
/// `caps` arrive (and that they were refused).
pub fn caps_error(properties: &[(&str, &str)], caps: &str) -> gst::glib::Error {
    let mut h = harness(properties);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    let caps: gst::Caps = caps.parse().unwrap();
    // The harness's own push reports a refused sticky event as stored; ask the pad itself.
    let sinkpad = h.element().unwrap().static_pad("sink").unwrap();
    assert!(
        !sinkpad.send_event(gst::event::Caps::new(&caps)),
        "caps {caps} must be refused"
    );
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    error_of(&msg)
}

/// The error of an ERROR message.
pub fn error_of(message: &gst::Message) -> gst::glib::Error {
    let gst::MessageView::Error(err) = message.view() else {
        panic!("not an error: {message:?}")
    };
    err.error()
}
