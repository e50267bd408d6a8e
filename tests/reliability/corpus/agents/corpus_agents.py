"""The one valid function the broken agent manifests of the corpus point at."""


def ok(inputs: dict) -> dict:
    return {"ok": True}
