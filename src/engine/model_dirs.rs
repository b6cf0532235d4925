// SPDX-License-Identifier: MPL-2.0
//! Named models: `m3ddm` and `m3ddm-plus` stand for the directories that `make model`
//! writes, in one well-known place: `$M3DDM_MODELS_DIR/NAME`, else
//! `$XDG_DATA_HOME/m3ddmoutpaint/models/NAME`, else `~/.local/share/m3ddmoutpaint/models/NAME`
//! (the exporter's `m3ddm_export/model_dirs.py` follows the same rule). Anything else
//! given as a model is a directory path, taken as it is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The names `make model MODEL=…` and `python -m m3ddm_export --from-hub …` know.
pub const NAMED_MODELS: &[&str] = &["m3ddm", "m3ddm-plus"];

/// The directory named models live in, from an environment lookup (`None` without
/// `M3DDM_MODELS_DIR`, an absolute `XDG_DATA_HOME` or `HOME`).
pub fn models_root_with(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(dir) = set("M3DDM_MODELS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let data_home = set("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".local").join("share")))?;
    Some(data_home.join("m3ddmoutpaint").join("models"))
}

/// The command that makes the named model `name`, for messages.
pub fn make_model_command(name: &str) -> String {
    format!(
        "make model MODEL={name} (in the m3ddmoutpaint source tree; it downloads the published \
         weights from the Hugging Face Hub and exports them, see models/README.md)"
    )
}

/// What a `model-path` or `--model` value names: a named model's directory, checked to
/// hold an exported model (with the command that makes it when it does not), or the
/// value itself as a path.
pub fn resolve_model_with(
    value: &str,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, String> {
    if !NAMED_MODELS.contains(&value) {
        return Ok(PathBuf::from(value));
    }
    let Some(root) = models_root_with(env) else {
        return Err(format!(
            "the model {value} cannot be looked up: none of M3DDM_MODELS_DIR, XDG_DATA_HOME \
             and HOME is set"
        ));
    };
    let dir = root.join(value);
    if dir.join("manifest.json").is_file() {
        return Ok(dir);
    }
    Err(format!(
        "the model {value} is not installed ({} has no manifest.json); make it with: {}",
        dir.display(),
        make_model_command(value)
    ))
}

/// [`resolve_model_with`] on this process's environment.
pub fn resolve_model(value: &str) -> Result<PathBuf, String> {
    resolve_model_with(value, |name| std::env::var_os(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn the_models_directory_is_the_override_then_xdg_then_home() {
        let root = |pairs: &[(&str, &str)]| models_root_with(env_of(pairs));
        let all = [
            ("M3DDM_MODELS_DIR", "/m"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(root(&all), Some(PathBuf::from("/m")));
        assert_eq!(
            root(&all[1..]),
            Some(PathBuf::from("/x/m3ddmoutpaint/models"))
        );
        // A relative XDG_DATA_HOME is invalid by the XDG spec and ignored.
        assert_eq!(
            root(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.local/share/m3ddmoutpaint/models"))
        );
        assert_eq!(
            root(&[("M3DDM_MODELS_DIR", ""), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.local/share/m3ddmoutpaint/models"))
        );
        assert_eq!(root(&[]), None);
    }

    #[test]
    fn other_values_are_paths_as_given() {
        let none = env_of(&[]);
        assert_eq!(
            resolve_model_with("models/tiny", &none).unwrap(),
            PathBuf::from("models/tiny")
        );
        // A directory that happens to be called m3ddm is reached as ./m3ddm.
        assert_eq!(
            resolve_model_with("./m3ddm", &none).unwrap(),
            PathBuf::from("./m3ddm")
        );
    }

    #[test]
    fn a_missing_named_model_names_the_command_that_makes_it() {
        let dir = std::env::temp_dir().join(format!("m3ddm-named-{}", std::process::id()));
        let root = dir.to_str().unwrap().to_owned();
        let env = [("M3DDM_MODELS_DIR", root.as_str())];
        let err = resolve_model_with("m3ddm-plus", env_of(&env)).unwrap_err();
        assert!(err.contains("make model MODEL=m3ddm-plus"), "{err}");
        assert!(
            err.contains(&dir.join("m3ddm-plus").display().to_string()),
            "{err}"
        );

        std::fs::create_dir_all(dir.join("m3ddm-plus")).unwrap();
        std::fs::write(dir.join("m3ddm-plus").join("manifest.json"), "{}").unwrap();
        let found = resolve_model_with("m3ddm-plus", env_of(&env));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap(), dir.join("m3ddm-plus"));
    }
}
