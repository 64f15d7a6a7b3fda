"""The Portrait panel: the photo with the face found and the crop the model will see, with honest warnings."""

from PIL import ImageDraw

from memo_app.display import DISPLAY_SIDE, enlarged
from memo_app.service import StudioService
from memo_model.errors import InputError
from memo_model.pipelines.request import LIMITS

FACE_COLOUR = (0, 200, 0)  # green
CROP_COLOUR = (255, 140, 0)  # orange


class PortraitPanel:
    """Inspect the portrait whenever it or the crop scale changes."""

    def __init__(self, service: StudioService):
        self.service = service

    @property
    def trained_on_synthetic(self) -> bool:
        """MEMO-Tiny (and the test models) only ever saw rendered synthetic faces."""
        if self.service.pipeline is None:
            return False
        info = self.service.pipeline.model_info
        return info.source == "bundled" or "tiny" in info.name.lower()

    def inspect_portrait(self, image: str | None, crop_scale: float) -> tuple:
        """The photo with the face box (green) and crop (orange), the crop the model sees, and warnings."""
        if not image:
            return None, None, "Upload a portrait, take one with the webcam, or pick an example."
        pipeline = self.service.pipeline
        resolution = pipeline.model_info.resolution if pipeline is not None else DISPLAY_SIDE
        try:
            crop_scale = float(crop_scale)
            limit = LIMITS["crop_scale"]
            if not limit.minimum <= crop_scale <= limit.maximum:
                raise InputError(
                    f"{limit.label} must be between {limit.minimum:g} and {limit.maximum:g}; got {crop_scale:g}."
                )
            portrait = self.service.portrait(image, resolution, crop_scale)
        except InputError as error:
            return None, None, f"Warning: {error}"
        annotated = portrait.full_image.copy()
        draw = ImageDraw.Draw(annotated)
        width = max(2, annotated.width // 150)
        draw.rectangle(portrait.crop_box, outline=CROP_COLOUR, width=width)
        if portrait.face_box is not None:
            draw.rectangle(portrait.face_box, outline=FACE_COLOUR, width=width)
        notes = [f"Warning: {warning}" for warning in portrait.warnings]
        if self.trained_on_synthetic and not self.service.is_synthetic_example(portrait.full_image):
            notes.append(
                "Note: the active model was trained only on synthetic rendered faces: on a real photo it shows the "
                "pipeline working, not a convincing animation. Load the official MEMO weights for real photos."
            )
        if portrait.face_box is not None and not portrait.warnings:
            notes.insert(0, "One face found (green box).")
        size = f"{portrait.original_size[0]}×{portrait.original_size[1]}"
        notes.append(f"Photo {size}; the model sees the orange square at {resolution}×{resolution} px.")
        return annotated, enlarged(portrait.image), "\n\n".join(notes)
