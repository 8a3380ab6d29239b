"""Cead's data definitions: pinned JSON-LD contexts, JSON Schemas, vocabularies and typed credential models."""
from importlib import resources

def data_path(*parts: str):
    """Path to a file shipped inside the schemas package (contexts, JSON Schemas, examples)."""
    return resources.files(__name__).joinpath(*parts)
