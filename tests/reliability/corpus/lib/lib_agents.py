"""Valid agents the broken workflows of the corpus refer to."""


def ok(inputs: dict) -> dict:
    return {"ok": True}
