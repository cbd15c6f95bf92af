"""Page sections are real, ordered headings: h2 (st.header) under the page's h1 title, where they were h3
(st.subheader) or a markdown h4, so a screen reader's outline skipped a level."""

import pytest
from test_app import page


@pytest.mark.parametrize("name, model", [("home", None), ("distillation", None), ("sensitivity", "lenet-5")])
def test_sections_are_h2_under_the_h1_title(fmnist, name, model):
    at = page(name, model)
    assert len(at.title) == 1 and at.header, (name, [h.value for h in at.header])
    assert not at.subheader, (name, [h.value for h in at.subheader])  # h3 straight under h1
    assert not [m.value for m in at.markdown if m.value.lstrip().startswith(("###", "####"))]
