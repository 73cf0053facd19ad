"""trainer.evaluate.recognition_device.open_set_draws: the device path's open-set test repeated over several
choices of who is enrolled, on real ORL photos (Haar, landmarks, the shipped embedding bundle)."""
from __future__ import annotations

import pytest

from tests.conftest import REPO, shared_path

pytest.importorskip("ai_edge_litert")


@pytest.mark.slow
def test_open_set_draws_pool_the_counts_of_each_draw_and_keep_the_first():
    from trainer.evaluate.recognition_device import device_system, open_set, open_set_draws, see_photos

    orl = shared_path("data") / "orl"
    if not orl.is_dir():
        pytest.skip("../shared/data/orl is not here")
    photos = {f"s{i}": sorted((orl / f"s{i}").glob("*.pgm"))[:5] for i in range(1, 9)}
    device = device_system("device", REPO / "models" / "embedding", REPO / "models" / "landmarks")
    see_photos([device], photos)
    result = open_set_draws([device], photos, enrolled=4, per_person=2, draws=3, seed=11)
    singles = [open_set([device], photos, 4, 2, seed=11 + i)["device"] for i in range(3)]
    pooled = result["pooled"]["device"]
    assert result["pooled"]["draws"] == 3
    assert result["device"] == singles[0]                       # the first draw, as one open_set gives it
    assert pooled["stranger_probes"] == sum(s["stranger_probes"] for s in singles) > 0
    assert pooled["strangers_given_a_name"] == sum(s["strangers_given_a_name"] for s in singles)
    assert pooled["enrolled_probes"] == sum(s["enrolled_probes"] for s in singles) > 0
    assert pooled["enrolled_probes_named_correctly"] == sum(s["enrolled_probes_named_correctly"] for s in singles)
    assert pooled["strangers_named"] == round(pooled["strangers_given_a_name"] / pooled["stranger_probes"], 4)
    assert pooled["draws_over_5_percent_strangers"] == sum(s["strangers_named"] > 0.05 for s in singles)
    # ORL's people are easy for the dlib network: most enrolled probes get their own name
    assert pooled["enrolled_named_correctly"] > 0.5
