fn main() {
    gst_plugin_version_helper::info();
    // The venv's ONNX Runtime library found at build time, so that a plugin loaded
    // by gst-launch-1.0 from any directory finds it (ORT_DYLIB_PATH still wins).
    println!("cargo:rerun-if-env-changed=M3DDM_ORT_DYLIB");
    let recorded = std::env::var("M3DDM_ORT_DYLIB").unwrap_or_default();
    println!("cargo:rustc-env=M3DDM_ORT_DYLIB_BUILD={recorded}");
}
