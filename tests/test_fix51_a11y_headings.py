"""Compare's and Export's sections are h2 (st.header) under the page's h1 title, where they were h3 (st.subheader):
an accessibility audit (axe's heading-order rule) found a screen reader's outline skipping a level on both."""

from test_app_compare_export import compare, export, results, seeded, select, store  # noqa: F401 -- fixtures


def test_compare_sections_are_h2(seeded):
    at = select(compare(), [0, 1])
    assert not at.exception
    assert len(at.title) == 1 and not at.subheader, [h.value for h in at.subheader]
    assert [h.value for h in at.header] == [f"{len(seeded)} saved runs", "Side by side"]


def test_export_recipe_heading_is_h2(fmnist):
    at = export()
    assert not at.exception
    assert len(at.title) == 1 and not at.subheader, [h.value for h in at.subheader]
    assert [h.value for h in at.header] and at.header[0].value.startswith(r"lenet\-300\-100\: ")  # Markdown-escaped
