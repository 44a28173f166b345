"""The table and plots of ``bnnflow geometry`` (bnnflow.model.geometry_plots)."""

from bnnflow.model import geometry
from bnnflow.model.geometry_plots import summary_table


def test_summary_table_has_one_row_per_layer(tmp_path, make_checkpoint, digit_like_images):
    make_checkpoint(tmp_path, [64, 16, 16, 10])
    report = geometry.analyze(tmp_path, images=digit_like_images(20))
    table = summary_table(report)
    assert table.row_count == 3
    assert [str(c) for c in table.columns[0].cells] == ["fc0", "fc1", "fc2"]
