"""The generated layer reference stays current with the registry and the schema."""
from pathlib import Path

from caffelite.tools.layer_docs import render

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_layer_reference_is_current():
    current = (DOCS / "layers.md").read_text()
    assert current == render(), ("docs/layers.md is stale: regenerate it with "
                                 "`python -m caffelite.tools.layer_docs > docs/layers.md`")


def test_layer_reference_covers_every_type():
    import caffelite

    text = render()
    for name in caffelite.layer_type_list():
        assert f"\n## {name}\n" in text
