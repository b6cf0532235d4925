// SPDX-License-Identifier: MPL-2.0
//! Tensors between the engine and a server: what a server's `ModelMetadata`
//! must say for a graph of the manifest (names, datatypes, ranks, fixed dims;
//! Triton's `[B,1]` form of a `[B]` input of a batched model is recognised),
//! the inputs as raw little-endian bytes in the manifest's dtypes (f32 → f16
//! for fp16 models), batches cut into the server's largest, and the output
//! widened back to f32.

use std::ops::Range;

use prost::bytes::Bytes;

use super::client::proto::model_metadata_response::TensorMetadata;
use crate::engine::error::{EngineError, Result};
use crate::engine::manifest::{DType, Graph, GraphSpec, TensorSpec};
use crate::engine::model::{GraphInput, InputData};

/// The protocol's name of an element type.
pub(super) fn datatype(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "FP32",
        DType::F16 => "FP16",
        DType::I64 => "INT64",
    }
}

/// How one graph tensor travels to or from one server.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServedTensor {
    pub name: String,
    /// The server declares one more, trailing, dimension of 1 (Triton's `[B,1]`
    /// for the `[B]` timestep of a batched model): sent with it, read without it.
    pub trailing_one: bool,
}

/// One graph as one server serves it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServedGraph {
    /// In the manifest's order.
    pub inputs: Vec<ServedTensor>,
    pub output: ServedTensor,
}

impl ServedGraph {
    /// Whether the server wants a trailing 1 on input `name`.
    pub fn input_has_trailing_one(&self, name: &str) -> bool {
        self.inputs.iter().any(|t| t.name == name && t.trailing_one)
    }
}

/// Compares a server's metadata of a graph with the manifest; the error is
/// the detail of a sentence ("inputs that differ from the manifest: …").
pub(super) fn check_metadata(
    spec: &GraphSpec,
    inputs: &[TensorMetadata],
    outputs: &[TensorMetadata],
) -> std::result::Result<ServedGraph, String> {
    let inputs = check_side("inputs", &spec.inputs, inputs)?;
    let mut outputs = check_side("outputs", &spec.outputs, outputs)?;
    let output = outputs
        .pop()
        .ok_or("no outputs, where the manifest declares one")?;
    Ok(ServedGraph { inputs, output })
}

fn check_side(
    what: &str,
    declared: &[TensorSpec],
    served: &[TensorMetadata],
) -> std::result::Result<Vec<ServedTensor>, String> {
    let differ = |detail: String| format!("{what} that differ from the manifest: {detail}");
    if served.len() != declared.len() {
        let names: Vec<&str> = served.iter().map(|t| t.name.as_str()).collect();
        return Err(differ(format!(
            "it has {names:?}, the manifest {:?}",
            declared.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()
        )));
    }
    declared
        .iter()
        .map(|want| {
            let Some(got) = served.iter().find(|t| t.name == want.name) else {
                return Err(differ(format!("it has no `{}`", want.name)));
            };
            if got.datatype != datatype(want.dtype) {
                return Err(differ(format!(
                    "`{}` is {}, the manifest says {} ({})",
                    want.name,
                    got.datatype,
                    want.dtype.name(),
                    datatype(want.dtype)
                )));
            }
            let trailing_one = shape_fits(&got.shape, &want.shape).ok_or_else(|| {
                differ(format!(
                    "`{}` has shape {:?}, the manifest says {}",
                    want.name,
                    got.shape,
                    manifest_shape(&want.shape)
                ))
            })?;
            Ok(ServedTensor {
                name: want.name.clone(),
                trailing_one,
            })
        })
        .collect()
}

/// `Some(trailing_one)` when a served shape (`-1` dynamic) can carry the
/// manifest's (`None` symbolic): the same rank, or one more trailing 1; fixed
/// dims equal where both are fixed.
fn shape_fits(served: &[i64], declared: &[Option<i64>]) -> Option<bool> {
    let trailing_one = match served.len().checked_sub(declared.len()) {
        Some(0) => false,
        Some(1) if matches!(served.last(), Some(1 | -1)) => true,
        _ => return None,
    };
    let fixed_differ = served
        .iter()
        .zip(declared)
        .any(|(got, want)| matches!(want, Some(want) if *got >= 0 && got != want));
    (!fixed_differ).then_some(trailing_one)
}

fn manifest_shape(shape: &[Option<i64>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("?".to_owned(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(","))
}

/// One input as it travels: shape, protocol datatype and raw bytes.
#[derive(Debug, Clone)]
pub(super) struct Encoded {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub datatype: &'static str,
    pub raw: Bytes,
}

impl Encoded {
    /// Items `rows` of the leading (batch) dimension.
    pub fn rows(&self, rows: Range<usize>) -> Encoded {
        let items = self.shape.first().copied().unwrap_or(1).max(1);
        let item_bytes = self.raw.len() / items;
        let mut shape = self.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = rows.len();
        }
        Encoded {
            name: self.name,
            shape,
            datatype: self.datatype,
            raw: self
                .raw
                .slice(rows.start * item_bytes..rows.end * item_bytes),
        }
    }
}

/// An input in `dtype` (the manifest's), as raw little-endian bytes.
pub(super) fn encode(graph: Graph, input: &GraphInput<'_>, dtype: DType) -> Result<Encoded> {
    let raw: Vec<u8> = match (&input.data, dtype) {
        (InputData::F32(v), DType::F32) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (InputData::F32(v), DType::F16) => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        (InputData::I64(v), DType::I64) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (InputData::I64(v), DType::F32) => {
            v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
        }
        (InputData::I64(v), DType::F16) => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x as f32).to_le_bytes())
            .collect(),
        (InputData::F32(_), DType::I64) => {
            return Err(EngineError::Model(format!(
                "the {} input `{}` is int64 where the engine sends floats",
                graph.key(),
                input.name
            )));
        }
    };
    Ok(Encoded {
        name: input.name,
        shape: input.shape.clone(),
        datatype: datatype(dtype),
        raw: Bytes::from(raw),
    })
}

/// Appends an FP32 or FP16 output of `values` elements to `out`, widened to f32.
pub(super) fn decode(
    datatype: &str,
    raw: &[u8],
    values: usize,
    out: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    let width = match datatype {
        "FP32" => 4,
        "FP16" => 2,
        other => return Err(format!("an output of type {other}, not FP32 or FP16")),
    };
    if raw.len() != values * width {
        return Err(format!(
            "{} bytes of {datatype} output where its shape needs {}",
            raw.len(),
            values * width
        ));
    }
    out.reserve(values);
    if width == 4 {
        out.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    } else {
        out.extend(
            raw.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        );
    }
    Ok(())
}
