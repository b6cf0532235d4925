// SPDX-License-Identifier: MPL-2.0
//! The remote backend without a server: URLs, the metadata check against the
//! tiny model's manifest (Triton's shapes), the request's shapes and bytes,
//! batch parts, and reading outputs back. `tests/remote/` runs it against
//! real servers.

use super::client::proto::model_infer_response::InferOutputTensor;
use super::client::proto::model_metadata_response::TensorMetadata;
use super::*;
use crate::engine::model::InputData;
use crate::engine::test_support::tiny_model_dir;

fn tensor(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
    TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
    }
}

/// The U-Net as Triton serves the tiny model (models/README.md's table).
fn triton_unet() -> (Vec<TensorMetadata>, Vec<TensorMetadata>) {
    (
        vec![
            tensor("sample", "FP32", &[-1, 9, 16, -1, -1]),
            tensor("timestep", "INT64", &[-1, 1]),
            tensor("fps", "INT64", &[-1, 1]),
            tensor("context", "FP32", &[-1, -1, 320]),
        ],
        vec![tensor("noise_pred", "FP32", &[-1, 4, 16, -1, -1])],
    )
}

fn tiny_manifest() -> Manifest {
    Manifest::read(&tiny_model_dir()).unwrap()
}

#[test]
fn server_urls_are_grpc_host_and_port() {
    assert_eq!(
        parse_server_url(" grpc://gpu1:8001 ").unwrap(),
        "grpc://gpu1:8001"
    );
    assert_eq!(
        parse_server_url("grpc://[::1]:8001/").unwrap(),
        "grpc://[::1]:8001"
    );
    for (tls, canonical) in [
        ("grpcs://gpu1:8001", "grpcs://gpu1:8001"),
        ("https://gpu1:8001/", "grpcs://gpu1:8001"),
    ] {
        assert_eq!(parse_server_url(tls).unwrap(), canonical);
        assert_eq!(server_host(canonical), ("gpu1", true));
    }
    assert_eq!(server_host("grpc://[::1]:8001"), ("[::1]", false));
    for bad in [
        "http://gpu1:8001",
        "gpu1:8001",
        "grpc://gpu1",
        "grpc://gpu1:8001/v2",
        "grpc://user@gpu1:8001",
        "not a url",
    ] {
        let err = parse_server_url(bad).unwrap_err().to_string();
        assert!(
            err.contains(bad.trim()) && err.contains("grpc://host:port"),
            "{err}"
        );
    }
}

#[test]
fn triton_metadata_of_the_tiny_unet_is_accepted() {
    let manifest = tiny_manifest();
    let (inputs, outputs) = triton_unet();
    let served = check_metadata(manifest.graph(Graph::Unet), &inputs, &outputs).unwrap();
    let trailing: Vec<(&str, bool)> = served
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.trailing_one))
        .collect();
    assert!(trailing.contains(&("timestep", true)) && trailing.contains(&("sample", false)));
    assert!(!served.output.trailing_one);
}

#[test]
fn metadata_that_differs_from_the_manifest_is_named() {
    let manifest = tiny_manifest();
    let spec = manifest.graph(Graph::Unet);
    let (inputs, outputs) = triton_unet();
    let cases: Vec<(Vec<TensorMetadata>, &str)> = vec![
        (
            vec![
                tensor("sample", "FP16", &[-1, 9, 16, -1, -1]),
                inputs[1].clone(),
                inputs[2].clone(),
                inputs[3].clone(),
            ],
            "`sample` is FP16, the manifest says float32",
        ),
        (
            vec![
                tensor("sample", "FP32", &[-1, 8, 16, -1, -1]),
                inputs[1].clone(),
                inputs[2].clone(),
                inputs[3].clone(),
            ],
            "`sample` has shape [-1, 8, 16, -1, -1]",
        ),
        (
            vec![
                inputs[0].clone(),
                tensor("timestep", "INT64", &[-1, 2]),
                inputs[2].clone(),
                inputs[3].clone(),
            ],
            "`timestep` has shape",
        ),
        (
            inputs[..3].to_vec(),
            "it has [\"sample\", \"timestep\", \"fps\"]",
        ),
        (
            vec![
                tensor("latents", "FP32", &[-1, 9, 16, -1, -1]),
                inputs[1].clone(),
                inputs[2].clone(),
                inputs[3].clone(),
            ],
            "it has no `sample`",
        ),
    ];
    for (served, want) in cases {
        let err = check_metadata(spec, &served, &outputs).unwrap_err();
        assert!(err.starts_with("inputs that differ"), "{err}");
        assert!(err.contains(want), "{err} (wanted {want})");
    }
    let err =
        check_metadata(spec, &inputs, &[tensor("noise_pred", "FP32", &[-1, 4, 16])]).unwrap_err();
    assert!(err.starts_with("outputs that differ"), "{err}");
}

#[test]
fn requests_carry_raw_bytes_and_the_servers_shapes() {
    let manifest = tiny_manifest();
    let (inputs, outputs) = triton_unet();
    let served = check_metadata(manifest.graph(Graph::Unet), &inputs, &outputs).unwrap();
    let sample = [1.5f32, -2.0];
    let timestep = [981i64];
    let encoded = [
        encode(
            Graph::Unet,
            &GraphInput {
                name: "sample",
                shape: vec![1, 2],
                data: InputData::F32(&sample),
            },
            DType::F32,
        )
        .unwrap(),
        encode(
            Graph::Unet,
            &GraphInput {
                name: "timestep",
                shape: vec![1],
                data: InputData::I64(&timestep),
            },
            DType::I64,
        )
        .unwrap(),
    ];
    let request = infer_request(Graph::Unet, &served, &encoded);
    assert_eq!(request.model_name, "unet");
    assert_eq!(request.inputs[0].shape, [1, 2]);
    assert_eq!(request.inputs[1].shape, [1, 1], "Triton's [B,1] timestep");
    assert_eq!(request.inputs[1].datatype, "INT64");
    assert_eq!(request.outputs[0].name, "noise_pred");
    assert_eq!(
        &request.raw_input_contents[0][..],
        &[0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0]
    );
    assert_eq!(&request.raw_input_contents[1][..], &981i64.to_le_bytes());
}

#[test]
fn fp16_inputs_are_halves_and_outputs_widen() {
    let values = [1.0f32, -0.5, 65504.0];
    let input = GraphInput {
        name: "images",
        shape: vec![3],
        data: InputData::F32(&values),
    };
    let encoded = encode(Graph::VaeEncoder, &input, DType::F16).unwrap();
    assert_eq!(encoded.datatype, "FP16");
    assert_eq!(&encoded.raw[..], &[0x00, 0x3c, 0x00, 0xb8, 0xff, 0x7b]);
    let mut out = vec![7.0];
    decode("FP16", &encoded.raw, 3, &mut out).unwrap();
    assert_eq!(out, [7.0, 1.0, -0.5, 65504.0]);
    assert!(
        decode("FP32", &encoded.raw, 3, &mut out)
            .unwrap_err()
            .contains("6 bytes")
    );
    assert!(
        decode("INT8", &encoded.raw, 6, &mut out)
            .unwrap_err()
            .contains("INT8")
    );
    let ints = GraphInput {
        name: "fps",
        shape: vec![1],
        data: InputData::F32(&values[..1]),
    };
    assert!(encode(Graph::Unet, &ints, DType::I64).is_err());
}

#[test]
fn batches_split_into_parts_of_whole_items() {
    let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let input = GraphInput {
        name: "latents",
        shape: vec![3, 2, 2],
        data: InputData::F32(&values),
    };
    let encoded = encode(Graph::VaeDecoder, &input, DType::F32).unwrap();
    let part = encoded.rows(2..3);
    assert_eq!(part.shape, [1, 2, 2]);
    let mut out = Vec::new();
    decode("FP32", &part.raw, 4, &mut out).unwrap();
    assert_eq!(out, [8.0, 9.0, 10.0, 11.0]);
}

#[test]
fn outputs_are_read_by_name_without_the_trailing_one() {
    let served = ServedGraph {
        inputs: Vec::new(),
        output: tensors::ServedTensor {
            name: "context".into(),
            trailing_one: true,
        },
    };
    let response = ModelInferResponse {
        outputs: vec![
            InferOutputTensor {
                name: "other".into(),
                datatype: "FP32".into(),
                shape: vec![1],
                ..Default::default()
            },
            InferOutputTensor {
                name: "context".into(),
                datatype: "FP32".into(),
                shape: vec![2, 1],
                ..Default::default()
            },
        ],
        raw_output_contents: vec![
            vec![0u8; 4].into(),
            [1f32.to_le_bytes(), 2f32.to_le_bytes()].concat().into(),
        ],
        ..Default::default()
    };
    let mut out = Vec::new();
    assert_eq!(read_output(&served, &response, &mut out).unwrap(), [2]);
    assert_eq!(out, [1.0, 2.0]);
    let missing = ModelInferResponse::default();
    assert!(
        read_output(&served, &missing, &mut out)
            .unwrap_err()
            .contains("no output `context`")
    );
}
