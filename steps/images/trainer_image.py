"""What pins the trainer of a run: an image digest, or the content hash of the embedded trainer's code."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Where a trainer image keeps its Python and this project's code (images/<algorithm>/Dockerfile).
IMAGE_PYTHON = "/opt/venv/bin/python"
IMAGE_APP_DIR = "/app"


class TrainerImage(BaseModel):
    """What ran the trainer. Exactly one of image_digest / code_sha256 pins it."""

    model_config = ConfigDict(frozen=True)

    algorithm: str
    image_reference: str  # repo:tag as registered
    image_digest: str | None = None  # sha256:... (container and Kubernetes executors)
    code_sha256: str | None = None  # embedded subprocess executor: hash of the trainer's code
    entrypoint: str = ""

    @property
    def script_in_image(self) -> str:
        """The entrypoint's path inside the image, for a command that starts it another way (torchrun)."""
        if not self.entrypoint:
            raise ValueError(f"trainer image {self.image_reference!r} of {self.algorithm!r} names no entrypoint script")
        return f"{IMAGE_APP_DIR}/{self.entrypoint}"

    @property
    def pinned_reference(self) -> str:
        if self.image_digest:
            repository = self.image_reference.rsplit("@", 1)[0]
            last = repository.rsplit("/", 1)[-1]
            if ":" in last:
                repository = repository[: repository.rfind(":")]
            return f"{repository}@{self.image_digest}"
        return f"code:{self.code_sha256}"
