"""A list setting that the environment can give as a JSON array or comma-separated text."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def split_env_list(value: Any) -> Any:
    """An environment string as a list: a JSON array or comma-separated items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


#: ``list[str]`` read from ``DETECTOR_..=a,b`` or ``DETECTOR_..='["a", "b"]'``.
EnvList = Annotated[list[str], NoDecode, BeforeValidator(split_env_list)]
