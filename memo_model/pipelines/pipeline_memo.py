"""MemoPipeline: a portrait and an audio file -> a talking video of any length (paper §4, appendix D).

The whole long-video loop lives here, so every caller (CLI, app, tests, benchmarks) gets the same behaviour. It is
written as named steps that others call (bench/ times them, never copies of them):

    prepare_guidance       the guidance passes and their face tokens            once per video
    prepare_reference      the portrait's latent and reference-net features      once per video (the net sees frames
                                                                                 alone)
    for each clip of 16 frames:
        prepare_clip       reference net on the past frames (reference_stacks), memory write from them (write_memory,
                           Eq. 3, 4), audio tokens (audio_tokens) and emotion; what each guidance pass drops is
                           conditions.py's
        denoise_clip       denoising steps: diffusion net on the guidance passes batched (predict_velocity),
                           FlowMatch Euler (speed.py: the last step, σ 0.001 -> 0, reuses the previous velocity)
        decode_clip        VAE decode in bounded batches -> frames streamed to the mp4 writer
        next_past_frames   the last frames re-encoded: what the next clip looks back on

Official behaviour reproduced (docs/CHECKPOINT.md §1.5-1.7): clip 0 looks back on the reference image repeated
as its past frames; clip t > 0 on the last generated frames, re-encoded from their decoded pixels (not quantised);
the memory is carried across all clips; the scheduler is FlowMatch Euler with the diffusers defaults; latents are
scaled by the VAE's scaling factor (0.18215) and reference latents use the posterior mean.

What is written (``__call__``): the mp4 carries the person's own audio file at its own rate and channels (the
official code muxes the 16 kHz mono input), cut to the frames made; with paste-back (``GenerationRequest.paste_back``)
each clip is also blended into the whole portrait (``vision/paste_back.py``), which becomes ``<name>.mp4``, the crop
alone ``<name>-crop.mp4``. ``output_resolution`` tells a request's video size before it runs.

Legend: c latent channels, f frames per clip, p past frames, h w latent size, H W pixels.
"""

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from einops import rearrange

from memo_model.audio.emotion import EMOTION_LABELS
from memo_model.audio.features import AudioFeatureExtractor
from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.models.diffusion_net import DiffusionNet
from memo_model.models.memory_temporal import TemporalMemory
from memo_model.models.projections import AudioProjection, ImageProjection
from memo_model.models.reference_net import ReferenceFeatures, ReferenceNet
from memo_model.pipelines import conditions
from memo_model.pipelines.conditions import Kept
from memo_model.pipelines.emotions import ClipEmotions, plan_emotions
from memo_model.pipelines.guidance import (
    GUIDANCE_LAYOUTS,
    GuidancePass,
    combine,
    guidance_plan,
    official_reference_rows,
    pass_references,
)
from memo_model.pipelines.request import (
    CLIP_FRAMES,
    OFFICIAL_GUIDANCE,
    OFFICIAL_STEPS,
    PREVIEW_STEPS,
    GenerationRequest,
)
from memo_model.pipelines.speed import (
    ModelOffload,
    SpeedOptions,
    autocast,
    cpu_threads,
    prepare_modules,
    resolve_precision,
    skips_denoiser,
)
from memo_model.vision.face import IdentityEmbedder, PreparedPortrait, load_image, prepare_portrait
from memo_model.vision.paste_back import PasteBack, output_size, wanted
from memo_model.vision.video_io import VideoWriter, audio_stream, frames_to_uint8

DECODE_BATCH = 8  # frames per VAE decode call: bounds activation memory at 512² on small GPUs
OUTPUT_DIR = Path("outputs")


@dataclass(frozen=True)
class ModelInfo:
    """What the active weights are and what they support."""

    name: str
    source: str  # "bundled", a folder or a hub id
    resolution: int
    fps: int = 30
    notes: str = ""
    # Guidance scale for settings a request leaves unset: the official 3.5, lower for a small undertrained model
    # that classifier-free guidance pushes off its data (manifest ``default_guidance``).
    default_guidance: float = OFFICIAL_GUIDANCE
    # Denoising steps for requests that leave them unset (manifest ``default_steps``; official 20).
    default_steps: int = OFFICIAL_STEPS
    # A preview's steps unless the request sets them (manifest ``preview_steps``): MEMO-Tiny's 1 keeps previews
    # faster than real time on 2 CPU cores, at the cost of flatter colours (docs/PERFORMANCE.md).
    preview_steps: int = PREVIEW_STEPS

    def steps_for(self, request: GenerationRequest) -> int:
        """The denoising steps ``request`` runs on this model."""
        return request.effective_steps(self.default_steps, self.preview_steps)

    def resolution_for(self, request: GenerationRequest) -> int:
        """The side of the square crop ``request`` animates on this model."""
        return request.resolution or self.resolution


@dataclass(frozen=True)
class Progress:
    """Handed to the callback after every denoising step and after every finished clip (``frames`` set)."""

    clip: int  # 0-based
    num_clips: int
    step: int  # 1-based within the clip; equals num_steps once the clip is done
    num_steps: int
    elapsed: float  # seconds since the run started
    eta: float  # estimated seconds left
    frames: np.ndarray | None = None  # (f, H, W, 3) uint8 of a finished clip: the crop, before any paste-back


@dataclass
class GenerationResult:
    video_path: Path  # the whole portrait with paste-back, else the crop
    settings_path: Path
    cancelled: bool
    num_frames: int
    duration: float
    seed: int
    clip_emotions: ClipEmotions
    resolution: tuple[int, int]  # (width, height) of video_path
    crop_video_path: Path | None = None  # the crop alone, beside a pasted-back video; None without paste-back
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipOutput:
    """One finished clip of ``MemoPipeline.run_clips``."""

    clip: int  # 0-based
    latents: torch.Tensor  # (1, c, f, h, w) the denoised latents, scaled as the diffusion net sees them
    frames: torch.Tensor  # (kept, 3, H, W) decoded frames in [0, 1], float32 (kept < f only on a cut last clip)
    progress: Progress


@dataclass(frozen=True)
class GuidanceBatch:
    """The guidance passes every denoiser call of a video batches, and their face tokens (``prepare_guidance``)."""

    plan: list[tuple[GuidancePass, float]]  # the passes and their coefficients (guidance.py)
    kept: Kept  # (passes,) masks: which conditions each pass keeps (conditions.py)
    faces: torch.Tensor  # (conditions, m, c) face tokens, once per distinct face condition (dropped first)
    condition_index: torch.Tensor  # (passes,) long: each pass's face condition, a row of ``faces``
    layout: str  # "per-sample" or "official" (guidance.py)

    @property
    def num_passes(self) -> int:
        return len(self.plan)

    @property
    def coefficients(self) -> list[float]:
        return [c for _, c in self.plan]


@dataclass(frozen=True)
class VideoReference:
    """The portrait as every clip's reference, computed once per video (``prepare_reference``)."""

    latent: torch.Tensor  # (1, c, h, w) posterior mean x scaling factor
    features: ReferenceFeatures  # (conditions, 1, ...) reference-net features under each face condition


@dataclass(frozen=True)
class PastFrames:
    """The frames the next clip looks back on, passed in and returned like the memory."""

    latents: torch.Tensor  # (p, c, h, w)
    are_portrait: bool  # clip 0 (and the "reference" ablation): the portrait repeated p times


@dataclass(frozen=True)
class ClipConditions:
    """Everything one clip's denoiser calls read, one row per guidance pass (``prepare_clip``)."""

    reference: ReferenceFeatures  # (passes, 1 + p, ...) features of [portrait, past frames]
    memory: TemporalMemory  # (passes) the memory each pass reads
    faces: torch.Tensor  # (passes, m, c) face tokens
    audio_tokens: torch.Tensor  # (passes, f, m, c)
    emotion: torch.Tensor  # (passes,) long
    use_reference: torch.Tensor  # (passes,) bool: the reference image in spatial attention
    reference_rows: torch.Tensor | None  # ((passes f),) whose reference image each row reads; official layout only
    coefficients: list[float]  # of the passes' predictions in the guided one


class Cancelled(Exception):
    """Raised inside the loop when the caller asked to stop; the pipeline turns it into a partial result."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C (or a SIGTERM turned into one) during a run, raised after the partial video, with its audio, and
    its sidecar were written: ``result`` describes them."""

    def __init__(self, result: "GenerationResult"):
        super().__init__(f"interrupted; the partial video is at {result.video_path}")
        self.result = result


class MemoPipeline:
    """All components of a MEMO model plus the clip loop; ``__call__`` runs one ``GenerationRequest``."""

    def __init__(
        self,
        vae: AutoencoderKL,
        reference_net: ReferenceNet,
        diffusion_net: DiffusionNet,
        image_proj: ImageProjection,
        audio_proj: AudioProjection,
        audio_features: AudioFeatureExtractor,
        identity_embedder: IdentityEmbedder,
        emotion_detector=None,
        vocal_separator=None,
        scheduler: FlowMatchEulerDiscreteScheduler | None = None,
        model_info: ModelInfo | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        options: SpeedOptions | None = None,
    ):
        self.vae, self.reference_net, self.diffusion_net = vae, reference_net, diffusion_net
        self.image_proj, self.audio_proj = image_proj, audio_proj
        self.audio_features = audio_features
        self.identity_embedder = identity_embedder
        self.emotion_detector = emotion_detector
        self.vocal_separator = vocal_separator  # official path: audio features from the vocal stem
        self.scheduler = scheduler or FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
        self.device, self.dtype = torch.device(device), dtype
        self.latent_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.model_info = model_info or ModelInfo("unnamed", "memory", resolution=512)
        self.options = options or SpeedOptions()
        self.offload = ModelOffload(self.device, self.options.cpu_offload)
        offloaded = (vae, reference_net, diffusion_net) if self.options.cpu_offload else ()
        for module in self.modules().values():
            if next(module.parameters()).dtype != dtype:
                module.to(dtype=dtype)
            module.to("cpu" if module in offloaded else self.device).eval().requires_grad_(False)
        prepare_modules(self.modules(), self.options)
        self.precision = resolve_precision(self.options, self.device, dtype)  # "bfloat16" autocast or "float32"

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "vae": self.vae,
            "reference_net": self.reference_net,
            "diffusion_net": self.diffusion_net,
            "image_proj": self.image_proj,
            "audio_proj": self.audio_proj,
        }

    # --- small steps of the run ---------------------------------------------------------------------------

    def autocast(self):
        """The precision context every network call runs in (``SpeedOptions.precision``)."""
        return autocast(self.device, self.precision)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: (n, 3, H, W) in [-1, 1] -> latents (n, c, h, w): posterior mean x scaling factor."""
        with self.autocast():
            latents = [
                self.offload.use(self.vae).encode(chunk.to(self.device, self.dtype)).latent_dist.mean
                for chunk in pixels.split(DECODE_BATCH)
            ]
        return torch.cat(latents).to(self.dtype) * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (n, c, h, w) -> pixels (n, 3, H, W) in [0, 1], float32, in bounded batches."""
        with self.autocast():
            frames = [
                self.offload.use(self.vae).decode(chunk / self.vae.config.scaling_factor).sample
                for chunk in latents.split(DECODE_BATCH)
            ]
        return (torch.cat(frames).float() / 2 + 0.5).clamp(0, 1)

    def reference_features(self, latents: torch.Tensor, faces: torch.Tensor) -> ReferenceFeatures:
        """Reference-net features of the frames ``latents`` (f, c, h, w), once per face condition in ``faces``."""
        stack = rearrange(latents, "f c h w -> 1 c f h w").expand(len(faces), -1, -1, -1, -1)
        with self.autocast():
            return self.offload.use(self.reference_net)(stack, faces)

    def identity_embedding(self, portrait: PreparedPortrait) -> tuple[torch.Tensor, list[str]]:
        """The portrait's identity embedding (1, d), the image projection's input, plus the embedder's warnings."""
        reads_full = getattr(self.identity_embedder, "reads_full_image", False)
        identity = self.identity_embedder(portrait.full_image if reads_full else portrait.image)
        embedding = torch.as_tensor(np.asarray(identity.embedding), dtype=self.dtype, device=self.device)[None]
        return embedding, list(identity.warnings)

    # --- the steps of the clip loop, in the order it runs them ----------------------------------------------

    def prepare_guidance(
        self,
        face_embedding: torch.Tensor,
        guidance: tuple[float, float, float] = (OFFICIAL_GUIDANCE,) * 3,
        layout: str = "per-sample",
    ) -> GuidanceBatch:
        """The guidance passes of (reference, audio, emotion) scales and their face tokens, once per video.

        face_embedding: (1, d) identity embedding, the image projection's input. Each distinct face condition of the
        passes is projected once, the dropped one from the zero embedding (``conditions.py``): (conditions, m, c).
        """
        if layout not in GUIDANCE_LAYOUTS:
            raise ValueError(f"Unknown guidance layout {layout!r}; choose one of {', '.join(GUIDANCE_LAYOUTS)}.")
        plan = guidance_plan(*guidance)
        passes = [p for p, _ in plan]
        face_conditions = sorted({p.reference for p in passes})  # False: the dropped face, True: the portrait's
        embedding = face_embedding.to(self.device, self.dtype)
        with self.autocast():
            faces = torch.cat(
                [
                    self.image_proj(conditions.face_embeddings(embedding, torch.tensor([keep], device=self.device)))
                    for keep in face_conditions
                ]
            ).to(self.dtype)
        return GuidanceBatch(
            plan=plan,
            kept=Kept.of_passes(passes, self.device),
            faces=faces,
            condition_index=torch.tensor([face_conditions.index(p.reference) for p in passes]),
            layout=layout,
        )

    def prepare_reference(
        self, reference_image: torch.Tensor, passes: GuidanceBatch, past_frames: int = CLIP_FRAMES
    ) -> tuple[VideoReference, PastFrames]:
        """The portrait's latent and reference-net features, once per video, and clip 0's past frames.

        reference_image: (1, 3, H, W) portrait crop in [-1, 1]. The reference net is a 2D UNet: it sees each frame on
        its own, so the portrait's features (conditions, 1, ...) serve every clip. Clip 0 looks back on the portrait
        repeated ``past_frames`` times: (p, c, h, w).
        """
        latent = self.encode(reference_image)  # (1, c, h, w)
        reference = VideoReference(latent, self.reference_features(latent, passes.faces))
        return reference, PastFrames(latent.repeat(past_frames, 1, 1, 1), are_portrait=True)

    def reference_stacks(
        self, passes: GuidanceBatch, reference: VideoReference, past: PastFrames
    ) -> ReferenceFeatures:
        """Reference-net features of [portrait, past frames] (conditions, 1 + p, ...), once per face condition.

        The net runs only on past frames that are not the portrait (clip 0 runs it on none)."""
        if past.are_portrait:
            return reference.features.repeat_frames(1 + len(past.latents))
        return reference.features.followed_by(self.reference_features(past.latents, passes.faces))

    def write_memory(
        self,
        passes: GuidanceBatch,
        stacks: ReferenceFeatures,
        memory: TemporalMemory | None,
        decay: float | None = None,
    ) -> tuple[ReferenceFeatures, TemporalMemory, TemporalMemory]:
        """Write the past frames of ``stacks`` (conditions, 1 + p, ...) into the memory (Eq. 3, 4), once per clip.

        memory: the one carried from the last clip, or ``None`` for a new one with γ = ``decay`` (``None``: the
        model's); a carried memory keeps the γ it was written with. Returns each pass's reference features
        (passes, 1 + p, ...) and memory, and the memory to carry: one per face condition, shared by the passes that
        have it ("per-sample"), or one per pass written from its own face-tiled stack ("official", guidance.py).
        """
        decay = decay if memory is None else None
        net = self.offload.use(self.diffusion_net)
        with self.autocast():
            if passes.layout == "official":
                pass_reference = pass_references(stacks, passes.condition_index, passes.layout)
                memory = net.write_memory(pass_reference, memory, decay=decay)
                return pass_reference, memory, memory
            memory = net.write_memory(stacks, memory, decay=decay)
            return stacks.select(passes.condition_index), memory.select(passes.condition_index), memory

    def audio_tokens(self, audio: torch.Tensor, is_tokens: bool = False) -> torch.Tensor:
        """One clip's audio features (f, window, layers, channels) -> its audio tokens (1, f, m, c).

        With ``is_tokens`` the input is already projected (f, m, c) and passes through."""
        audio = audio[None].to(self.device, self.dtype)
        if is_tokens:
            return audio
        with self.autocast():
            return self.audio_proj(audio).to(self.dtype)

    def prepare_clip(
        self,
        passes: GuidanceBatch,
        reference: VideoReference,
        past: PastFrames,
        audio: torch.Tensor,
        emotion: int,
        memory: TemporalMemory | None = None,
        *,
        memory_decay: float | None = None,
        audio_is_tokens: bool = False,
    ) -> tuple[ClipConditions, TemporalMemory]:
        """Everything one clip's denoising reads, for every guidance pass, and the memory to carry to the next clip.

        past: the frames this clip looks back on; audio: the clip's audio features (f, window, layers, channels), or
        with ``audio_is_tokens`` its audio tokens (f, m, c); emotion: its emotion id (``NO_EMOTION`` = none);
        memory / memory_decay: as ``write_memory``. A pass drops what ``conditions.py`` says; past frames and the
        memory are every pass's.
        """
        stacks = self.reference_stacks(passes, reference, past)
        pass_reference, pass_memory, memory = self.write_memory(passes, stacks, memory, memory_decay)
        kept, num_passes = passes.kept, passes.num_passes
        official = passes.layout == "official"
        clip = ClipConditions(
            reference=pass_reference,
            memory=pass_memory,
            faces=passes.faces[passes.condition_index],
            audio_tokens=conditions.audio_tokens(self.audio_tokens(audio, audio_is_tokens), kept.audio),
            emotion=conditions.emotions(torch.full((num_passes,), int(emotion), device=self.device), kept.emotion),
            use_reference=kept.reference,
            reference_rows=official_reference_rows(num_passes, CLIP_FRAMES).to(self.device) if official else None,
            coefficients=passes.coefficients,
        )
        return clip, memory

    def prepare_latents(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """A clip's initial noise (1, c, f, h, w), for frames of height x width pixels, drawn from ``generator``."""
        factor = self.latent_factor
        shape = (1, self.vae.config.latent_channels, CLIP_FRAMES, height // factor, width // factor)
        return torch.randn(shape, generator=generator)

    def predict_velocity(self, clip: ClipConditions, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One denoiser call on every guidance pass: latents (1, c, f, h, w) -> velocities (passes, c, f, h, w)."""
        with self.autocast():
            return self.offload.use(self.diffusion_net)(
                latents.expand(len(clip.coefficients), -1, -1, -1, -1),
                t,
                clip.reference,
                clip.faces,
                clip.audio_tokens,
                clip.emotion,
                memory=clip.memory,
                use_reference=clip.use_reference,
                reference_rows=clip.reference_rows,
            )

    def denoise_clip(
        self,
        clip: ClipConditions,
        latents: torch.Tensor,
        steps: int = OFFICIAL_STEPS,
        timesteps: Sequence[float] | None = None,
        should_stop: Callable[[], bool] | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """The denoising loop with guidance: noise (1, c, f, h, w) -> the clip's latents (1, c, f, h, w).

        FlowMatch Euler over ``steps``, or explicit ``timesteps`` (descending, in [0, 1000]); each step combines the
        passes' velocities (``guidance.combine``); the last step (σ 0.001 -> 0) reuses the previous velocity unless
        the options say otherwise (speed.py). should_stop: polled every step, raises ``Cancelled``; callback: called
        with (step, num_steps) after every step, step 1-based.
        """
        latents = latents.to(self.device, self.dtype)
        if timesteps is None:
            self.scheduler.set_timesteps(steps, device=self.device)
        else:
            self.scheduler.set_timesteps(sigmas=[float(t) / 1000 for t in timesteps], device=self.device)
        num_steps = len(self.scheduler.timesteps)
        guided = None
        for step, t in enumerate(self.scheduler.timesteps):
            if should_stop is not None and should_stop():
                raise Cancelled
            sigma = float(self.scheduler.sigmas[step])
            if not skips_denoiser(sigma, self.options, have_velocity=guided is not None):
                guided = combine(self.predict_velocity(clip, latents, t).float(), clip.coefficients)[None]
            latents = self.scheduler.step(guided, t, latents.float()).prev_sample.to(self.dtype)
            if callback is not None:
                callback(step + 1, num_steps)
        return latents

    def decode_clip(self, latents: torch.Tensor, num_frames: int = CLIP_FRAMES) -> torch.Tensor:
        """A clip's latents (1, c, f, h, w) -> its first ``num_frames`` frames (num_frames, 3, H, W) in [0, 1]."""
        return self.decode(rearrange(latents[:, :, :num_frames], "1 c f h w -> f c h w"))

    def next_past_frames(self, past: PastFrames, frames: torch.Tensor) -> PastFrames:
        """The past frames after a clip of ``frames`` (f, 3, H, W) in [0, 1]: the last p of [past, frames], the new
        ones re-encoded from their decoded pixels (as official: not quantised)."""
        num_past = len(past.latents)
        recent = self.encode(frames[-num_past:] * 2 - 1)
        return PastFrames(torch.cat([past.latents, recent])[-num_past:], are_portrait=False)

    # --- the clip loop on tensors -------------------------------------------------------------------------

    @torch.no_grad()
    def run_clips(
        self,
        reference_image: torch.Tensor,
        face_embedding: torch.Tensor,
        audio: Iterable[torch.Tensor],
        emotions: Sequence[int],
        *,
        guidance: tuple[float, float, float] = (OFFICIAL_GUIDANCE,) * 3,
        steps: int = OFFICIAL_STEPS,
        timesteps: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        audio_is_tokens: bool = False,
        past_frames: int = CLIP_FRAMES,
        memory_mode: str = "full",
        memory_decay: float | None = None,
        guidance_layout: str = "per-sample",
        num_frames: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        callback: Callable[[Progress], None] | None = None,
    ) -> Iterator[ClipOutput]:
        """MEMO's clip loop on precomputed tensors: no files, detectors or feature extractors.

        reference_image: (1, 3, H, W) portrait crop in [-1, 1]; face_embedding: (1, d) identity embedding (the
        image projection's input); audio: per clip, audio features (f, window, layers, channels) — or, with
        ``audio_is_tokens``, projected audio tokens (f, m, c) — as a (clips, ...) tensor or any iterable (read one
        clip at a time, so a long audio streams); emotions: one emotion id per clip (``NO_EMOTION`` = none), which
        sets the number of clips. guidance: (reference, audio, emotion) scales (``guidance.py``); steps, or explicit
        ``timesteps`` (descending, in [0, 1000]); noise: (clips, c, f, h, w) initial latents, else drawn clip by
        clip from ``generator``; memory_mode / memory_decay / past_frames as in ``GenerationRequest``;
        guidance_layout: ``"per-sample"`` or ``"official"`` (``guidance.py``); num_frames: frames wanted in all
        (the last clip decodes only up to it); should_stop: polled every step, raises ``Cancelled``.

        Yields one ``ClipOutput`` per clip, as soon as it is decoded; ``__call__`` streams them to the mp4.
        """
        num_clips = len(emotions)
        if noise is not None and len(noise) < num_clips:
            raise ValueError(f"noise has {len(noise)} clips' latents; {num_clips} are needed.")
        generator = generator or torch.Generator("cpu").manual_seed(0)

        # 1. The guidance passes and the portrait, once per video
        passes = self.prepare_guidance(face_embedding, guidance, guidance_layout)
        reference, past = self.prepare_reference(reference_image, passes, past_frames)
        memory: TemporalMemory | None = None
        loop_started = time.perf_counter()

        def step_callback(clip: int) -> Callable[[int, int], None] | None:  # a clip's denoising steps as Progress
            if callback is None:
                return None
            return lambda step, num_steps: callback(_progress(clip, num_clips, step, num_steps, loop_started))

        for clip, audio_clip in enumerate(audio):
            if clip >= num_clips:
                break
            # 2. Reference net on the past frames, memory write, audio tokens and emotion of every pass
            carried = memory if memory_mode == "full" else None  # the ablations forget between clips
            clip_conditions, memory = self.prepare_clip(
                passes,
                reference,
                past,
                audio_clip,
                emotions[clip],
                carried,
                memory_decay=memory_decay,
                audio_is_tokens=audio_is_tokens,
            )

            # 3. Denoising loop, from this clip's noise
            if noise is not None:
                latents = noise[clip][None]
            else:
                latents = self.prepare_latents(*reference_image.shape[-2:], generator)
            latents = self.denoise_clip(clip_conditions, latents, steps, timesteps, should_stop, step_callback(clip))

            # 4. Decode (the last clip only up to num_frames)
            last_clip = clip == num_clips - 1
            frames_kept = CLIP_FRAMES
            if last_clip and num_frames is not None:
                frames_kept = min(CLIP_FRAMES, max(num_frames - clip * CLIP_FRAMES, 1))
            frames = self.decode_clip(latents, frames_kept)  # (f, 3, H, W) in [0, 1]

            # 5. The next clip looks back on this one's last frames (the "reference" ablation: on the portrait)
            if memory_mode != "reference" and not last_clip:
                past = self.next_past_frames(past, frames)
            num_steps = len(self.scheduler.timesteps)
            yield ClipOutput(clip, latents, frames, _progress(clip, num_clips, num_steps, num_steps, loop_started))

    # --- the run ----------------------------------------------------------------------------------------

    def output_resolution(
        self, request: GenerationRequest, portrait: PreparedPortrait | None = None
    ) -> tuple[int, int]:
        """(width, height) of the video ``request`` makes (``GenerationResult.resolution``), without generating.

        Paste-back off: the model's square crop, known at once. On: the picture's size (``paste_back.output_size``),
        read by decoding the picture. Automatic: whether the crop is smaller than the picture depends on the face,
        so the portrait is prepared as the run prepares it (face detection, about a second on a CPU) — unless
        ``portrait``, the request's ``prepare_portrait`` (the crop an app shows before the run), is given.
        """
        resolution = self.model_info.resolution_for(request)
        if request.paste_back is False:
            return resolution, resolution
        if request.paste_back and portrait is None:
            return output_size(load_image(request.image).size)
        if portrait is None:
            portrait = prepare_portrait(request.image, resolution, request.crop_scale, request.crop_to_face)
        return output_size(portrait.original_size) if _pastes_back(request, portrait) else (resolution, resolution)

    def __call__(
        self,
        request: GenerationRequest,
        callback: Callable[[Progress], None] | None = None,
        cancel: threading.Event | Callable[[], bool] | None = None,
    ) -> GenerationResult:
        with cpu_threads(self.options, self.device) as threads:  # the cores free now (SpeedOptions.threads)
            return self._generate(request, callback, cancel, threads)

    @torch.no_grad()
    def _generate(self, request: GenerationRequest, callback, cancel, threads: int) -> GenerationResult:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        # 1. Check inputs
        request = request.validate()
        resolution = self.model_info.resolution_for(request)
        if resolution % self.latent_factor:
            raise ValueError(f"Resolution {resolution} is not a multiple of the VAE factor {self.latent_factor}.")
        should_stop = cancel.is_set if isinstance(cancel, threading.Event) else (cancel or (lambda: False))

        # 2. Portrait and identity
        portrait = prepare_portrait(request.image, resolution, request.crop_scale, request.crop_to_face)
        warnings = list(portrait.warnings)
        face_embedding, face_warnings = self.identity_embedding(portrait)
        warnings += face_warnings
        reference_pixels = torch.from_numpy(np.asarray(portrait.image, dtype=np.float32) / 127.5 - 1.0)

        # 3. Audio, features and emotions
        waveform = load_audio(request.audio, max_seconds=request.max_audio_seconds, notes=warnings)
        if request.is_preview:
            waveform = waveform[: round(request.preview_length * SAMPLE_RATE)]
        soundtrack = _soundtrack(request.audio, waveform, warnings)  # what the mp4 plays, cut to the frames made
        fps = request.fps
        emotions = plan_emotions(waveform, self.emotion_detector, request, CLIP_FRAMES)  # on the mix, as official
        feature_waveform = waveform if self.vocal_separator is None else self.vocal_separator(waveform)
        warnings += emotions.warnings
        timings["prepare"] = time.perf_counter() - started

        # 4. The clip loop, streamed to the mp4 (and, with paste-back, the crop alone to a second one)
        guidance = request.guidance_scales(self.model_info.default_guidance)
        steps = self.model_info.steps_for(request)
        output = _output_path(request)
        paste = PasteBack.from_portrait(portrait) if _pastes_back(request, portrait) else None
        audio = {"audio": soundtrack, "audio_sample_rate": SAMPLE_RATE, "audio_seconds": len(waveform) / SAMPLE_RATE}
        writer = VideoWriter(output, fps=fps, **audio)
        crop_writer = None if paste is None else VideoWriter(crop_video_path(output), fps=fps, **audio)
        videos = [writer] if crop_writer is None else [writer, crop_writer]
        # Settings first, so that a killed run leaves them beside its partial video
        running = output.with_name(f"{output.stem}.partial.json")
        crop_partial = None if crop_writer is None else str(crop_writer.partial_path)
        partials = {"video": str(writer.partial_path), "crop_video": crop_partial}
        running.write_text(json.dumps({"status": "running", **partials, **_settings(request)}))
        cancelled = interrupted = False
        loop_started = time.perf_counter()
        try:
            clips = self.run_clips(
                rearrange(reference_pixels, "H W c -> 1 c H W"),
                face_embedding,
                self.audio_features.iter_clips(feature_waveform, fps),
                emotions.used,
                guidance=guidance,
                steps=steps,
                generator=torch.Generator("cpu").manual_seed(request.seed),
                past_frames=request.past_frames,
                memory_mode=request.memory_mode,
                memory_decay=request.memory_decay,
                guidance_layout=request.guidance_layout,
                num_frames=writer.frames_left,
                should_stop=should_stop,
                callback=callback,
            )
            for clip in clips:
                frames_uint8 = frames_to_uint8(rearrange(clip.frames, "f c H W -> f H W c").cpu().numpy())
                if paste is None:
                    writer.write(frames_uint8)
                else:
                    crop_writer.write(frames_uint8)
                    writer.write(paste(frames_uint8))  # (f, H, W, 3) at the portrait's size
                if callback is not None:
                    callback(replace(clip.progress, frames=frames_uint8))
        except (Cancelled, KeyboardInterrupt) as stop:  # a cancel, a Ctrl-C: keep what was made
            cancelled, interrupted = True, isinstance(stop, KeyboardInterrupt)
        except BaseException:
            for video in videos:  # the frames so far, as -partial.mp4 beside the running sidecar
                video.close(cancelled=True)
            raise
        for video in videos:
            video.close(cancelled=cancelled)
        timings["generate"] = time.perf_counter() - loop_started
        timings["total"] = time.perf_counter() - started

        result = GenerationResult(
            video_path=writer.target,
            settings_path=writer.target.with_suffix(".json"),
            cancelled=cancelled,
            num_frames=writer.frames_written,
            duration=writer.frames_written / fps,
            seed=request.seed,
            clip_emotions=emotions,
            resolution=(resolution, resolution) if paste is None else paste.size,
            crop_video_path=None if crop_writer is None else crop_writer.target,
            warnings=warnings,
            timings=timings,
        )
        plan = guidance_plan(*guidance)
        _write_sidecar(
            result, request, self.model_info, resolution, steps, plan, precision=self.precision, threads=threads
        )
        running.unlink(missing_ok=True)
        if interrupted:
            raise Interrupted(result)
        return result


def _pastes_back(request: GenerationRequest, portrait: PreparedPortrait) -> bool:
    """Whether ``request`` blends its clips into the whole portrait: as it says, or (``None``) when that adds
    anything — the picture holds more than the crop."""
    return wanted(portrait) if request.paste_back is None else request.paste_back


def _soundtrack(audio: str | Path, waveform: np.ndarray, warnings: list[str]) -> Path | np.ndarray:
    """The sound of the mp4: the person's own file, at its rate and channels, when ffmpeg reads it; else (a format
    only our decoder reads) the 16 kHz mono waveform the model heard, with a warning."""
    if audio_stream(audio) is not None:
        return Path(audio)
    warnings.append(
        f"The video's sound is the 16 kHz mono the model heard: the video encoder cannot read the audio file "
        f"{Path(audio).name!r} — convert it to WAV, FLAC or MP3 to keep its full quality."
    )
    return waveform


def _progress(clip, num_clips, step, num_steps, started, frames=None) -> Progress:
    elapsed = time.perf_counter() - started
    done = clip * num_steps + step
    total = num_clips * num_steps
    return Progress(clip, num_clips, step, num_steps, elapsed, elapsed / done * (total - done), frames)


def _output_path(request: GenerationRequest) -> Path:
    """The requested path, or outputs/<image>_<audio>.mp4; never overwrites an existing file."""
    if request.output is not None:
        path = Path(request.output)
    else:
        path = OUTPUT_DIR / f"{Path(request.image).stem}_{Path(request.audio).stem}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, counter = path.with_suffix(".mp4"), 1

    def taken(video: Path) -> bool:  # the video, its crop, its sidecar, or a partial or running file of these names
        crop = crop_video_path(video)
        partials = [mp4.with_name(f"{mp4.stem}-partial.mp4") for mp4 in (video, crop)]
        running = video.with_name(f"{video.stem}.partial.json")
        return any(p.exists() for p in (video, crop, video.with_suffix(".json"), *partials, running))

    while taken(candidate):
        candidate = path.with_name(f"{path.stem}-{counter}.mp4")
        counter += 1
    return candidate


def crop_video_path(video: str | Path) -> Path:
    """Where the crop alone goes beside a pasted-back ``video``: ``<name>-crop.mp4``."""
    video = Path(video)
    return video.with_name(f"{video.stem}-crop.mp4")


def _settings(request: GenerationRequest) -> dict:
    """The request as the sidecar keeps it."""
    return {"request": request.to_dict()}


def _write_sidecar(result, request, model_info, resolution, steps, plan, *, precision: str, threads: int) -> None:
    """Every setting, the seed, per-clip emotions (detected and used), the model and timings, next to the mp4."""
    data = {
        **_settings(request),
        "status": "interrupted" if result.cancelled else "finished",
        "video": str(result.video_path),
        "cancelled": result.cancelled,
        "num_frames": result.num_frames,
        "duration_seconds": round(result.duration, 3),
        "resolution": resolution,  # the side of the square crop the model animates
        "paste_back": result.crop_video_path is not None,
        "video_resolution": list(result.resolution),  # (width, height) of "video"
        "crop_video": None if result.crop_video_path is None else str(result.crop_video_path),
        "crop_video_resolution": None if result.crop_video_path is None else [resolution, resolution],
        "steps": steps,
        "guidance": dict(
            zip(("reference", "audio", "emotion"), request.guidance_scales(model_info.default_guidance), strict=True)
        ),
        "guidance_passes": [{"pass": p.name, "coefficient": c} for p, c in plan],
        "seed": result.seed,
        "model": asdict(model_info),
        "precision": precision,
        "threads": threads,
        "emotions": result.clip_emotions.to_dict(),
        "warnings": result.warnings,
        "timings_seconds": {k: round(v, 3) for k, v in result.timings.items()},
        "emotion_labels": list(EMOTION_LABELS),
    }
    result.settings_path.write_text(json.dumps(data, indent=2))
