"""What the request bodies of every Cinder API share: strict models, bounded text, metadata
and sizes, the ``Changes`` an update may make, and the parsing of an action's argument."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cascade_sim.errors import SimError

MAX_SIZE_GB = 16384
Text = Annotated[str, Field(max_length=255)]
Metadata = dict[Annotated[str, Field(min_length=1, max_length=255)], Text]
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Changes(Strict):
    """What an update of a volume or a snapshot may change."""

    name: Text | None = None
    description: Text | None = None
    metadata: Metadata = Field(default_factory=dict)


def parse(model: type[M], value: Any, where: str) -> M:
    """An action's argument validated by ``model``; a 400 naming the field otherwise."""
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join([where, *(str(part) for part in problem["loc"])])
        raise SimError(
            400, f"Invalid input for field/attribute {field}: {problem['msg']}."
        ) from None


def single_action(body: dict[str, Any]) -> tuple[str, Any]:
    """The name and argument of an action body, which has exactly one key."""
    if len(body) != 1:
        raise SimError(400, "An action body has exactly one key, the action's name.")
    return next(iter(body.items()))
