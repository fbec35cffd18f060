"""``python -m bench access`` end to end on a tiny corpus (as ``test_smoke``): it must run,
report its four principals, and find no search that returned fewer than top_k results while
at least top_k were readable. No timing is asserted."""

import pytest

import bench.access
from tests.bench.tiny import tiny_squad


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    squad = tiny_squad(tmp_path)
    monkeypatch.setattr(bench.access, "SQUAD", squad)
    monkeypatch.setattr("bench.common.SQUAD", squad)
    monkeypatch.setattr("bench.common.RESULTS", tmp_path / "results")
    return tmp_path


def test_access_bench(tiny):
    out = bench.access.main(["--sizes", "300", "--requests", "5", "--groups", "10", "--top-k", "4"])
    assert (tiny / "results" / "access.json").is_file()
    (size,) = out["sizes"].values()
    principals = size["principals"]
    assert list(principals) == ["admin (unfiltered)", "1 group", "10 groups", "all 10 groups"]
    assert len(out["rows"]) == 4 and len(out["table"].splitlines()) == 2 + 4
    assert out["short"] == 0
    assert all(p["short_library"] == 0 and p["short_http"] == 0 for p in principals.values())
    admin, one = principals["admin (unfiltered)"], principals["1 group"]
    # every document got a group: all groups read what the admin reads, one group a tenth
    assert principals["all 10 groups"]["readable_parents"] == admin["readable_parents"]
    assert principals["10 groups"]["readable_parents"] == admin["readable_parents"]
    assert 0 < one["readable_parents"] < admin["readable_parents"]
    assert one["readable_parents"] >= 4  # so the short-result check applied
