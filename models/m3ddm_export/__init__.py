"""M3DDM exporter: the official video-outpainting 3D U-Net and the SD VAE as ONNX graphs.

Run `python -m m3ddm_export --help` (with `models/` on PYTHONPATH). Layers:
config (architecture settings) -> layers/unet3d (PyTorch modules with the checkpoint's
state-dict layout) -> checkpoint (loading and layout checks) -> graphs/export (ONNX
graphs and manifest.json); tiny (random test models); manifest_case (check-manifest).
"""

__version__ = "1.0.0"
