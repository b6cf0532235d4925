// The plugin's version information for GStreamer, the ONNX Runtime library path
// recorded at build time, and the Open Inference Protocol gRPC client generated
// from the vendored proto/grpc_service.proto (protox: no `protoc` needed).

fn main() {
    gst_plugin_version_helper::info();
    // The venv's ONNX Runtime library found at build time, so that a plugin loaded
    // by gst-launch-1.0 from any directory finds it (ORT_DYLIB_PATH still wins).
    println!("cargo:rerun-if-env-changed=M3DDM_ORT_DYLIB");
    let recorded = std::env::var("M3DDM_ORT_DYLIB").unwrap_or_default();
    println!("cargo:rustc-env=M3DDM_ORT_DYLIB_BUILD={recorded}");
    generate_inference_client();
}

/// The client of `inference.GRPCInferenceService` (messages and a tonic client, no server).
fn generate_inference_client() {
    let protos = ["proto/grpc_service.proto", "proto/model_config.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(["grpc_service.proto"], ["proto"])
        .unwrap_or_else(|e| panic!("proto/grpc_service.proto does not compile: {e}"));
    tonic_prost_build::configure()
        .build_server(false)
        .disable_comments(["."])
        // Tensor contents as `Bytes`: a retry or a batch part shares them, no copy.
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_fds(descriptors)
        .unwrap_or_else(|e| panic!("cannot generate the inference client: {e}"));
}
