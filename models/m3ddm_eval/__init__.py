# SPDX-License-Identifier: MPL-2.0
"""m3ddm_eval: the video-outpainting papers' protocol (M3DDM, MOTIA,
Follow-Your-Canvas) run through the m3ddmoutpaint element.

For every clip of a folder: its first frames resized to 256x256, for each mask
ratio the centre kept and the rest generated back by the element (each
*setting* a row: the outpainting settings asked for, and the blur and color
fills as baselines), then PSNR, SSIM, LPIPS and FVD against the ground truth,
over the whole frame and over the generated area only.

Modules: `clips` (reading videos and frame folders), `masks` (the kept centre
and the generated area), `settings` (a row's element properties), `element`
(gst-launch pipelines with the element, raw RGB in and out: no compression),
`metrics` (the scores), `weights` (LPIPS's AlexNet and I3D, from a path or the
usual cache), `report` (tables, CSV, contact sheets), `cli` (the run).
"""
