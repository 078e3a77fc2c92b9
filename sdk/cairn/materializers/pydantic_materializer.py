"""pydantic models as JSON; pydantic is never imported by this module."""

from __future__ import annotations

from typing import Any

from cairn.materializers.base import BaseMaterializer
from cairn.materializers.errors import MaterializerError

__all__ = ["PydanticMaterializer"]

JSON_FILENAME = "data.json"


class PydanticMaterializer(BaseMaterializer):
    """Any pydantic.BaseModel subclass, as model_dump_json() in data.json.

    Loads with data_type.model_validate_json, so the model's own validation
    and field types decide what comes back. Records the model's field names.
    """

    ASSOCIATED_TYPES = ("pydantic.main.BaseModel", "pydantic.BaseModel")  # either spelling

    def save(self, data: Any) -> None:
        with self.artifact_store.open(self.path(JSON_FILENAME), "wb") as file:
            file.write(data.model_dump_json().encode("utf-8"))

    def load(self, data_type: type) -> Any:
        validate = getattr(data_type, "model_validate_json", None)
        if validate is None:
            raise MaterializerError(
                f"loading {self.uri!r} needs the pydantic model class, got {data_type!r}; "
                "define the model at module level so it can be imported, or pass it as data_type."
            )
        with self.artifact_store.open(self.path(JSON_FILENAME), "rb") as file:
            return validate(file.read())

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"fields": list(type(data).model_fields)}
