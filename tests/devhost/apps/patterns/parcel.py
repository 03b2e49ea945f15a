"""A custom class that crosses the Durable boundary through the SDK's to_json/from_json protocol."""

from __future__ import annotations

import json


class Parcel:
    def __init__(self, label: str, grams: int) -> None:
        self.label = label
        self.grams = grams

    def heavier(self, extra: int) -> Parcel:
        return Parcel(self.label, self.grams + extra)

    @staticmethod
    def to_json(obj: Parcel) -> str:
        return json.dumps({"label": obj.label, "grams": obj.grams})

    @staticmethod
    def from_json(text: str) -> Parcel:
        data = json.loads(text)
        return Parcel(data["label"], data["grams"])
