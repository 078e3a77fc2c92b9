"""pydantic models as JSON; pydantic is never imported by this module."""

from __future__ import annotations

from typing import Any

from cairn.materializers.base import BaseMaterializer

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
        with self.artifact_store.open(self.path(JSON_FILENAME), "rb") as file:
            return data_type.model_validate_json(file.read())  # type: ignore[attr-defined]

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"fields": list(type(data).model_fields)}
