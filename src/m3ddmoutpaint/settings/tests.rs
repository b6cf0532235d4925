// SPDX-License-Identifier: MPL-2.0
//! The properties' parsing and their validation at READY.

use super::*;

#[test]
fn fill_rgb_splits_the_colour() {
    let settings = Settings {
        fill_color: 0x12_34_56,
        ..Settings::default()
    };
    assert_eq!(settings.fill_rgb(), [0x12, 0x34, 0x56]);
}

#[test]
fn outpaint_without_model_path_names_the_property() {
    let settings = Settings::default();
    let err = settings.model_options().unwrap().unwrap_err();
    assert!(err.contains("model-path"), "{err}");
}

#[test]
fn model_path_must_be_a_directory() {
    let settings = Settings {
        model_path: Some("/nonexistent/m3ddm".into()),
        ..Settings::default()
    };
    let err = settings.model_options().unwrap().unwrap_err();
    assert!(
        err.contains("/nonexistent/m3ddm") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn inference_servers_are_checked_and_listed() {
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny");
    let settings = Settings {
        model_path: Some(tiny.into()),
        inference_server: Some(" grpc://gpu1:8001 ,grpc://gpu2:8001,".into()),
        inference_timeout: 1500,
        ..Settings::default()
    };
    let options = settings.model_options().unwrap().unwrap();
    // One denoiser per server, all on the one client over both.
    assert_eq!(options.len(), 2);
    assert_eq!(options[0], options[1]);
    assert_eq!(
        options[0].remote.servers,
        ["grpc://gpu1:8001", "grpc://gpu2:8001"]
    );
    assert_eq!(options[0].remote.timeout, Duration::from_millis(1500));
    let in_process = Settings {
        model_path: Some(tiny.into()),
        ..Settings::default()
    };
    let in_process = in_process.model_options().unwrap().unwrap();
    assert!(in_process.iter().all(|o| o.remote.servers.is_empty()));
    let bad = Settings {
        inference_server: Some("grpc://gpu1:8001,gpu2:8001".into()),
        ..settings
    };
    let err = bad.model_options().unwrap().unwrap_err();
    assert!(
        err.contains("`gpu2:8001`") && err.contains("grpc://"),
        "{err}"
    );
}

#[test]
fn blur_needs_no_model() {
    let settings = Settings {
        fill_mode: FillMode::Blur,
        ..Settings::default()
    };
    assert!(settings.model_options().is_none());
    assert!(settings.validate().is_ok());
}

#[test]
fn expand_takes_one_two_or_four_fractions() {
    assert_eq!(parse_expand("0.25").unwrap(), [0.25; 4]);
    assert_eq!(parse_expand("0.1,0.2").unwrap(), [0.1, 0.2, 0.1, 0.2]);
    assert_eq!(
        parse_expand("<0.1, 0.2, 0.3, 0.4>").unwrap(),
        [0.1, 0.2, 0.3, 0.4]
    );
    assert!(
        parse_expand("0.1,0.2,0.3")
            .unwrap_err()
            .contains("1, 2 or 4")
    );
    assert!(parse_expand("-1").unwrap_err().contains("`-1`"));
    let both = Settings {
        aspect_set: true,
        expand: Some("0.25".into()),
        ..Settings::default()
    };
    let err = both.validate().unwrap_err();
    assert!(err.contains("aspect") && err.contains("expand"), "{err}");
}

#[test]
fn non_positive_aspect_is_refused() {
    let settings = Settings {
        aspect: gst::Fraction::new(0, 1),
        ..Settings::default()
    };
    assert!(settings.validate().unwrap_err().contains("aspect"));
}
