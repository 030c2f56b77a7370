"""Video data: the built-in synthetic benchmarks (visual, and audio-visual), readers of
real data sets, clip sampling, transforms, optical flow, sound and loaders.

    data string / YAML --load_data_spec--> DataSpec --create_dataset(clip)--> ClipDataset
        --create_loader--> batches of (clip (B, C, T, H, W), label, video index)

The clip shape (frames, stride, crop size) comes from the model spec, never from the data.
"""

from harness.data.audio import AudioSettings, load_audio, log_mel
from harness.data.dataset import ClipDataset, SyntheticClipDataset, VideoClipDataset, create_dataset
from harness.data.flow import compute_flow, list_flow_algorithms, quantize_flow
from harness.data.index import DataWarning, VideoIndex, VideoRecord, load_video_index
from harness.data.layouts import detect_layout, list_layouts, register_layout
from harness.data.loader import ClipSampler, create_loader, default_workers, subset_indices
from harness.data.sampling import list_samplers, register_sampler, sample_clip
from harness.data.spec import (
    SYNTHETIC_PRESETS,
    DataSpec,
    SyntheticDataSpec,
    VideoDataSpec,
    load_data_spec,
)
from harness.data.synthetic import (
    SYNTHETIC_CLASSES,
    SyntheticVideos,
    list_synthetic_classes,
    reversal_pairs,
)
from harness.data.synthetic_av import (
    SyntheticAVVideos,
    audio_visual_pairs,
    list_audio_visual_classes,
)
from harness.data.transforms import create_transform, list_transforms, register_transform
from harness.data.video import DecodeError, load_video_frames, probe_video

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_PRESETS",
    "AudioSettings",
    "ClipDataset",
    "ClipSampler",
    "DataSpec",
    "DataWarning",
    "DecodeError",
    "SyntheticAVVideos",
    "SyntheticClipDataset",
    "SyntheticDataSpec",
    "SyntheticVideos",
    "VideoClipDataset",
    "VideoDataSpec",
    "VideoIndex",
    "VideoRecord",
    "audio_visual_pairs",
    "compute_flow",
    "create_dataset",
    "create_loader",
    "create_transform",
    "default_workers",
    "detect_layout",
    "list_audio_visual_classes",
    "list_flow_algorithms",
    "list_layouts",
    "list_samplers",
    "list_synthetic_classes",
    "list_transforms",
    "load_audio",
    "load_data_spec",
    "load_video_frames",
    "load_video_index",
    "log_mel",
    "probe_video",
    "quantize_flow",
    "register_layout",
    "register_sampler",
    "register_transform",
    "reversal_pairs",
    "sample_clip",
    "subset_indices",
]
