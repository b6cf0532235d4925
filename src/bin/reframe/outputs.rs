// SPDX-License-Identifier: MPL-2.0
//! The outputs of a run: aspect ratios as the command line spells them, the
//! shape of each output's frames (an aspect, or `expand`'s margins), the
//! container chosen by OUTPUT's extension, and the files a run writes (OUTPUT
//! itself, or one file per ratio named OUTPUT's stem plus `-WxH`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The element's limit on either term of the aspect ratio (100:1 and 1:100).
const MAX_ASPECT_TERMS_RATIO: u64 = 100;
/// The most outputs one run writes (each one an encoder and a muxer).
const MAX_OUTPUTS: usize = 8;
/// The output's aspect when neither --aspect nor --expand is given.
const DEFAULT_ASPECT: AspectRatio = AspectRatio {
    width: 9,
    height: 16,
};

/// An aspect ratio `W/H` or `W:H` with positive integer terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AspectRatio {
    pub width: u32,
    pub height: u32,
}

impl FromStr for AspectRatio {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an aspect ratio like 9/16 or 9:16");
        let (width, height) = text.split_once(['/', ':']).ok_or_else(bad)?;
        let term = |t: &str| t.trim().parse::<u32>().ok().filter(|&v| v > 0);
        let (Some(width), Some(height)) = (term(width), term(height)) else {
            return Err(bad());
        };
        let (w, h) = (u64::from(width), u64::from(height));
        if w > MAX_ASPECT_TERMS_RATIO * h || h > MAX_ASPECT_TERMS_RATIO * w {
            return Err(format!(
                "aspect ratio {width}/{height} is outside the range 1/100 to 100/1"
            ));
        }
        Ok(AspectRatio { width, height })
    }
}

impl AspectRatio {
    /// The ratio in lowest terms (18/32 → 9/16), to find two spellings of one ratio.
    fn reduced(self) -> (u32, u32) {
        let (mut a, mut b) = (self.width, self.height);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        (self.width / a, self.height / a)
    }

    /// The ratio in a file name: `9x16`.
    fn file_tag(self) -> String {
        format!("{}x{}", self.width, self.height)
    }
}

impl fmt::Display for AspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.width, self.height)
    }
}

/// The container of the output file, chosen by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Mp4,
    QuickTime,
    Matroska,
}

impl Container {
    pub fn from_path(path: &Path) -> Result<Container, String> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("mp4" | "m4v") => Ok(Container::Mp4),
            Some("mov") => Ok(Container::QuickTime),
            Some("mkv") => Ok(Container::Matroska),
            _ => Err(format!(
                "cannot tell the output format of {}: name it .mp4, .m4v, .mov or .mkv",
                path.display()
            )),
        }
    }

    /// The GStreamer muxer that writes it.
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::QuickTime => "qtmux",
            Container::Matroska => "matroskamux",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "MP4",
            Container::QuickTime => "QuickTime",
            Container::Matroska => "Matroska",
        }
    }
}

/// How an output's frame is grown from the source's.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// To a display aspect ratio.
    Aspect(AspectRatio),
    /// By margins, the element's `expand` property as written.
    Expand(String),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Aspect(aspect) => write!(f, "aspect {aspect}"),
            Shape::Expand(margins) => write!(f, "expand {margins}"),
        }
    }
}

/// One file to write: its path and the shape of its frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub path: PathBuf,
    pub shape: Shape,
}

impl Output {
    /// Where the file is written until it is complete: a hidden name beside
    /// it (`dir/.out.mp4.PID.part`), so that a run that ends early never
    /// leaves a broken file under the name asked for. The process id stays
    /// the same across the two passes (`exec`).
    pub fn partial_path(&self) -> PathBuf {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        self.path
            .with_file_name(format!(".{name}.{}.part", std::process::id()))
    }
}

/// The files to write: OUTPUT itself for one shape; for several aspects,
/// OUTPUT's stem plus `-WxH` of each (`out.mp4` → `out-9x16.mp4`, `out-1x1.mp4`).
/// Duplicate ratios, too many of them, and `--expand` with `--aspect` are refused.
pub fn plan(
    output: &Path,
    aspects: &[AspectRatio],
    expand: Option<&str>,
) -> Result<Vec<Output>, String> {
    let listed = || {
        aspects
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(margins) = expand {
        return match aspects {
            [] if margins.trim().is_empty() => {
                Err("--expand needs margins, e.g. --expand 0.25 or --expand 0,0.5".into())
            }
            [] => Ok(vec![Output {
                path: output.to_owned(),
                shape: Shape::Expand(margins.to_string()),
            }]),
            [aspect] => Err(format!(
                "--expand {margins} and --aspect {aspect} cannot be used together: --expand grows \
                 the frame by margins, --aspect to a ratio; give one of them"
            )),
            _ => Err(format!(
                "--expand {margins} makes one output and cannot be combined with several --aspect \
                 values ({}): run once with --expand and once with the --aspect values",
                listed()
            )),
        };
    }
    if aspects.len() > MAX_OUTPUTS {
        return Err(format!(
            "{} --aspect values ({}): one run writes at most {MAX_OUTPUTS} files",
            aspects.len(),
            listed()
        ));
    }
    for (i, later) in aspects.iter().enumerate() {
        if let Some(earlier) = aspects[..i].iter().find(|a| a.reduced() == later.reduced()) {
            return Err(if earlier == later {
                format!("--aspect {later} is given twice")
            } else {
                format!("--aspect {later} is the same ratio as --aspect {earlier}")
            });
        }
    }
    Ok(match aspects {
        [] => vec![Output {
            path: output.to_owned(),
            shape: Shape::Aspect(DEFAULT_ASPECT),
        }],
        [one] => vec![Output {
            path: output.to_owned(),
            shape: Shape::Aspect(*one),
        }],
        several => several
            .iter()
            .map(|&aspect| Output {
                path: tagged_path(output, &aspect.file_tag()),
                shape: Shape::Aspect(aspect),
            })
            .collect(),
    })
}

/// `dir/out.mp4` with `9x16` → `dir/out-9x16.mp4`.
fn tagged_path(path: &Path, tag: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let mut name = format!("{stem}-{tag}");
    if let Some(extension) = path.extension() {
        name.push('.');
        name.push_str(&extension.to_string_lossy());
    }
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspect_ratios_parse_with_slash_or_colon_and_refuse_the_rest() {
        assert_eq!(
            "9/16".parse::<AspectRatio>(),
            Ok(AspectRatio {
                width: 9,
                height: 16
            })
        );
        assert_eq!(
            " 4 : 3".parse::<AspectRatio>(),
            Ok(AspectRatio {
                width: 4,
                height: 3
            })
        );
        for bad in ["9x16", "0/16", "9/0", "-9/16", "1.5/1", "9/", ""] {
            let err = bad.parse::<AspectRatio>().unwrap_err();
            assert!(err.contains("is not an aspect ratio"), "{bad}: {err}");
        }
        let err = "101/1".parse::<AspectRatio>().unwrap_err();
        assert!(err.contains("outside the range"), "{err}");
        assert!("100/1".parse::<AspectRatio>().is_ok());
    }

    #[test]
    fn the_output_extension_chooses_the_container() {
        let output = |name: &str| Container::from_path(Path::new(name));
        assert_eq!(output("a.mp4"), Ok(Container::Mp4));
        assert_eq!(output("a.M4V"), Ok(Container::Mp4));
        assert_eq!(output("a.mov"), Ok(Container::QuickTime));
        assert_eq!(output("a.mkv"), Ok(Container::Matroska));
        let err = output("a.avi").unwrap_err();
        assert!(err.contains("name it .mp4"), "{err}");
    }
}
