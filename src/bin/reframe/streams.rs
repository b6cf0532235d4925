// SPDX-License-Identifier: MPL-2.0
//! What the input holds and what became of each stream, in the words the tool
//! prints (GStreamer's codec descriptions, "H.264 (High Profile)").

/// An audio stream of the input.
#[derive(Debug, Clone)]
pub struct AudioStream {
    pub codec: String,
    /// Copied as it is (true) or decoded and re-encoded to AAC.
    pub copied: bool,
}

#[derive(Debug, Default)]
pub struct Streams {
    /// The video stream that is reframed.
    pub video: Option<String>,
    pub audio: Vec<AudioStream>,
    /// Streams that are not written (further video streams, subtitles, data).
    pub left_out: Vec<String>,
}

impl Streams {
    /// The input's streams: "video H.264, audio MPEG-4 AAC".
    pub fn found(&self) -> String {
        let mut all: Vec<String> = self.video.iter().map(|v| format!("video {v}")).collect();
        all.extend(self.audio.iter().map(|a| format!("audio {}", a.codec)));
        all.extend(self.left_out.iter().cloned());
        if all.is_empty() {
            "no streams".to_string()
        } else {
            all.join(", ")
        }
    }

    /// What happened to the audio and the other streams: "audio MPEG-4 AAC copied".
    pub fn audio_outcome(&self) -> String {
        let mut all: Vec<String> = self
            .audio
            .iter()
            .map(|a| {
                let how = if a.copied {
                    "copied"
                } else {
                    "re-encoded to AAC"
                };
                format!("audio {} {how}", a.codec)
            })
            .collect();
        if all.is_empty() {
            all.push("no audio".to_string());
        }
        all.extend(self.left_out.iter().map(|s| format!("{s} left out")));
        all.join(", ")
    }
}
