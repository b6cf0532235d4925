// SPDX-License-Identifier: MPL-2.0
//! Reading a conformance case (`case.json` + `tensors.safetensors`) and
//! comparing results against its expected tensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// `Ok(max_abs_err)` on a pass, `Err(sentence)` on a failure.
pub type CaseResult = Result<f64, String>;

/// A passing case: its largest error and, for cases that compare several
/// tensors against one tolerance, each tensor's largest error beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub max_abs_err: f64,
    pub parts: Vec<(&'static str, f64)>,
    pub tolerance: Option<f64>,
}

impl From<f64> for Pass {
    fn from(max_abs_err: f64) -> Self {
        Pass {
            max_abs_err,
            parts: Vec::new(),
            tolerance: None,
        }
    }
}

impl Pass {
    /// The largest error of each named tensor, all compared at `tolerance`.
    pub fn of_parts(parts: Vec<(&'static str, f64)>, tolerance: f64) -> Pass {
        Pass {
            max_abs_err: parts.iter().map(|p| p.1).fold(0.0, f64::max),
            parts,
            tolerance: Some(tolerance),
        }
    }

    /// `max_abs_err=… [tensor=… … (tolerance …)]`, as the PASS line shows it.
    pub fn describe(&self) -> String {
        let mut text = format!("max_abs_err={:.3e}", self.max_abs_err);
        for (name, err) in &self.parts {
            text.push_str(&format!(" {name}={err:.3e}"));
        }
        if let Some(tolerance) = self.tolerance {
            text.push_str(&format!(" (tolerance {tolerance:.0e})"));
        }
        text
    }
}

/// A tensor from a case file, widened to f32 (u8 stays as its integer values).
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct Case {
    pub dir: PathBuf,
    pub kind: String,
    pub json: Value,
    tensors: HashMap<String, Tensor>,
}

/// Every subdirectory of `dir` that holds a `case.json`, sorted by name.
pub fn list_cases(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.join("case.json").is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

impl Case {
    pub fn load(dir: &Path) -> Result<Case, String> {
        let text = std::fs::read_to_string(dir.join("case.json"))
            .map_err(|e| format!("cannot read case.json: {e}"))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("case.json is not JSON: {e}"))?;
        let kind = json["kind"]
            .as_str()
            .ok_or("case.json has no `kind`")?
            .to_owned();
        let tensors = match std::fs::read(dir.join("tensors.safetensors")) {
            Ok(bytes) => read_tensors(&bytes)?,
            Err(_) => HashMap::new(),
        };
        Ok(Case {
            dir: dir.to_owned(),
            kind,
            json,
            tensors,
        })
    }

    /// A tensor by name, or a sentence naming the missing tensor.
    pub fn tensor(&self, name: &str) -> Result<&Tensor, String> {
        self.tensors
            .get(name)
            .ok_or_else(|| format!("tensors.safetensors has no `{name}`"))
    }

    /// The case's model directory (its `model` field, relative to the case).
    pub fn model_dir(&self) -> Result<PathBuf, String> {
        let rel = self.json["model"]
            .as_str()
            .ok_or("case.json has no `model`")?;
        Ok(self.dir.join(rel))
    }

    pub fn f64(&self, key: &str) -> Result<f64, String> {
        self.json[key]
            .as_f64()
            .ok_or_else(|| format!("case.json has no number `{key}`"))
    }

    pub fn u64(&self, key: &str) -> Result<u64, String> {
        self.json[key]
            .as_u64()
            .ok_or_else(|| format!("case.json has no integer `{key}`"))
    }

    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.json[key]
            .as_str()
            .ok_or_else(|| format!("case.json has no string `{key}`"))
    }
}

fn read_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("tensors.safetensors: {e}"))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            Dtype::U8 => raw.iter().map(|&v| v as f32).collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            other => return Err(format!("tensor `{name}` has unsupported dtype {other:?}")),
        };
        out.insert(
            name.to_string(),
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Max abs error of `got` against the expected tensor `name`; an error when
/// sizes differ or the error exceeds `tol`.
pub fn compare(case: &Case, name: &str, got: &[f32], tol: f64) -> CaseResult {
    let want = case.tensor(name)?;
    compare_slices(name, got, &want.data, tol)
}

pub fn compare_slices(name: &str, got: &[f32], want: &[f32], tol: f64) -> CaseResult {
    if got.len() != want.len() {
        return Err(format!(
            "{name}: {} values, expected {}",
            got.len(),
            want.len()
        ));
    }
    let mut err = 0f64;
    for (g, w) in got.iter().zip(want) {
        let d = (*g as f64 - *w as f64).abs();
        if d.is_nan() {
            err = f64::INFINITY;
        } else if d > err {
            err = d;
        }
    }
    if err > tol {
        Err(format!("{name} max_abs_err={err:.3e} > {tol:.0e}"))
    } else {
        Ok(err)
    }
}
