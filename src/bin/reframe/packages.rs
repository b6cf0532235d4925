// SPDX-License-Identifier: MPL-2.0
//! Which Debian package provides a missing GStreamer piece: by element name
//! (an element this tool creates itself) and by media type (a decoder or
//! demuxer that GStreamer's missing-plugin message asks for).

use gst_pbutils::MissingPluginMessage;

/// Elements the tool creates, and the Debian package each is in.
const ELEMENT_PACKAGES: &[(&str, &str)] = &[
    ("parsebin", "gstreamer1.0-plugins-base"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("deinterlace", "gstreamer1.0-plugins-good"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("qtmux", "gstreamer1.0-plugins-good"),
    ("matroskamux", "gstreamer1.0-plugins-good"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avenc_aac", "gstreamer1.0-libav"),
];

/// Media types (a decoder's input, or a container a demuxer reads), and the
/// Debian package whose plugin handles them.
const MEDIA_TYPE_PACKAGES: &[(&str, &str)] = &[
    ("video/x-h264", "gstreamer1.0-libav"),
    ("video/x-h265", "gstreamer1.0-libav"),
    ("video/mpeg", "gstreamer1.0-libav"),
    ("video/x-prores", "gstreamer1.0-libav"),
    ("video/x-divx", "gstreamer1.0-libav"),
    ("video/x-vp8", "gstreamer1.0-plugins-good"),
    ("video/x-vp9", "gstreamer1.0-plugins-good"),
    ("video/x-av1", "gstreamer1.0-plugins-bad"),
    ("audio/mpeg", "gstreamer1.0-libav"),
    ("audio/x-ac3", "gstreamer1.0-libav"),
    ("audio/x-eac3", "gstreamer1.0-libav"),
    ("audio/x-opus", "gstreamer1.0-plugins-base"),
    ("audio/x-vorbis", "gstreamer1.0-plugins-base"),
    ("audio/x-flac", "gstreamer1.0-plugins-good"),
    ("video/mpegts", "gstreamer1.0-plugins-bad"),
    ("video/quicktime", "gstreamer1.0-plugins-good"),
    ("video/x-matroska", "gstreamer1.0-plugins-good"),
    ("video/webm", "gstreamer1.0-plugins-good"),
];

fn element_package(element: &str) -> Option<&'static str> {
    ELEMENT_PACKAGES
        .iter()
        .find(|(name, _)| *name == element)
        .map(|(_, package)| *package)
}

fn media_type_package(media_type: &str) -> Option<&'static str> {
    MEDIA_TYPE_PACKAGES
        .iter()
        .find(|(name, _)| *name == media_type)
        .map(|(_, package)| *package)
}

fn install_advice(package: Option<&str>) -> String {
    match package {
        Some(package) => format!("install the Debian package {package}"),
        None => "`apt-cache search gstreamer1.0` lists the plugin packages".to_string(),
    }
}

/// The sentence for an element this tool could not create.
pub fn missing_element(element: &str) -> String {
    format!(
        "the GStreamer element {element} is missing: {}",
        install_advice(element_package(element))
    )
}

/// What a missing-plugin message asks for.
#[derive(Debug, PartialEq)]
pub struct MissingPlugin {
    /// GStreamer's description and the package to install, as a sentence.
    pub sentence: String,
    /// The media type a missing decoder or demuxer would handle ("video/x-h264"), if any.
    pub media_type: Option<String>,
}

/// Reads a missing-plugin message (`None` for other messages).
pub fn missing_plugin(message: &gst::MessageRef) -> Option<MissingPlugin> {
    let missing = MissingPluginMessage::parse(message).ok()?;
    let structure = message.structure()?;
    let (media_type, package) = match structure.get::<String>("type").ok()?.as_str() {
        "element" => {
            let element = structure.get::<String>("detail").ok();
            (None, element.and_then(|e| element_package(&e)))
        }
        _ => {
            let media_type = structure
                .get::<gst::Caps>("detail")
                .ok()
                .and_then(|caps| caps.structure(0).map(|s| s.name().to_string()));
            let package = media_type.as_deref().and_then(media_type_package);
            (media_type, package)
        }
    };
    Some(MissingPlugin {
        sentence: format!(
            "a GStreamer plugin is missing, {}: {}",
            missing.description(),
            install_advice(package)
        ),
        media_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element to post the messages (GStreamer requires one).
    fn poster() -> gst::Element {
        gst::init().unwrap();
        gst::ElementFactory::make("identity").build().unwrap()
    }

    #[test]
    fn a_missing_decoder_names_its_debian_package() {
        let poster = poster();
        let caps = gst::Caps::builder("video/x-h264")
            .field("profile", "high")
            .build();
        let message = MissingPluginMessage::builder_for_decoder(&caps)
            .src(&poster)
            .build();
        let missing = missing_plugin(&message).unwrap();
        assert_eq!(missing.media_type.as_deref(), Some("video/x-h264"));
        let text = missing.sentence;
        assert!(text.contains("H.264 (High Profile) decoder"), "{text}");
        assert!(text.contains("gstreamer1.0-libav"), "{text}");
    }

    #[test]
    fn a_missing_element_names_its_debian_package() {
        let message = MissingPluginMessage::builder_for_element("x264enc")
            .src(&poster())
            .build();
        let missing = missing_plugin(&message).unwrap();
        assert_eq!(missing.media_type, None);
        let text = missing.sentence;
        assert!(text.contains("gstreamer1.0-plugins-ugly"), "{text}");
        assert!(missing_element("matroskamux").contains("gstreamer1.0-plugins-good"));
        let unknown = missing_element("nosuchelement");
        assert!(unknown.contains("apt-cache search"), "{unknown}");
    }

    #[test]
    fn other_messages_are_not_missing_plugins() {
        gst::init().unwrap();
        let message = gst::message::Eos::new();
        assert_eq!(missing_plugin(&message), None);
    }
}
