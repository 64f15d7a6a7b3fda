"""How the app is run: where outputs go, which weights load first, queue and upload limits.

One frozen dataclass read from the environment, so ``python app.py``, a Hugging Face Space and the tests start the
same app with different folders and limits. Slider ranges are not here: they come from ``memo_model``'s ``LIMITS``.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "assets" / "examples"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


@dataclass(frozen=True)
class AppSettings:
    """Everything that decides how the app runs (not what it generates).

    ``weights``: a folder or hub id loaded at start (None = the bundled MEMO-Tiny when it is present).
    ``output_dir``: the only folder the app writes to and serves files from.
    ``max_audio_seconds``: longer audio is refused with a message (a CPU takes minutes per minute of video).
    """

    weights: str | None = None
    output_dir: Path = REPO_ROOT / "outputs" / "app"
    examples_dir: Path = EXAMPLES_DIR
    max_audio_seconds: float = 120.0
    max_upload: str = "25mb"
    queue_size: int = 8  # waiting generations beyond this are turned away with a "busy" message
    server_name: str = "127.0.0.1"
    server_port: int | None = None
    load_model_at_start: bool = True
    device: str | None = None  # None = cuda, then mps, then cpu (memo_model.loading.choose_device)

    @classmethod
    def from_env(cls, **overrides) -> "AppSettings":
        """Settings from ``MEMO_*`` environment variables; keyword arguments win over them."""
        env = {
            "weights": os.environ.get("MEMO_WEIGHTS") or None,
            "max_audio_seconds": _env_float("MEMO_MAX_AUDIO_SECONDS", cls.max_audio_seconds),
            "server_name": os.environ.get("GRADIO_SERVER_NAME", cls.server_name),
            "device": os.environ.get("MEMO_DEVICE") or None,
        }
        if os.environ.get("MEMO_OUTPUT_DIR"):
            env["output_dir"] = Path(os.environ["MEMO_OUTPUT_DIR"])
        if os.environ.get("SPACE_ID"):  # on a Hugging Face Space: listen on every interface, shorter audio
            env["server_name"] = "0.0.0.0"
            env["max_audio_seconds"] = _env_float("MEMO_MAX_AUDIO_SECONDS", 60.0)
        env.update(overrides)
        settings = cls(**env)
        return replace(settings, output_dir=Path(settings.output_dir).resolve())
