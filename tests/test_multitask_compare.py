"""The fixed-vs-uncertainty weighting verdict counts each head metric in its own direction."""
from __future__ import annotations

from trainer.multitask.compare_weighting import markdown


def _figures(age: float, gender: float, emotion: float, ethnicity: float) -> dict:
    return {"age_mae": age, "gender_acc": gender, "emotion_acc": emotion, "ethnicity_acc": ethnicity,
            "plain_loss": 1.0, "final_weights": {"age": 1.0, "gender": 1.0, "emotion": 0.5, "ethnicity": 0.5}}


def test_lower_age_error_and_higher_accuracies_win():
    text = markdown({"fixed": _figures(6.0, 0.90, 0.55, 0.70), "uncertainty": _figures(6.5, 0.91, 0.56, 0.71)},
                    8, "test trunk")
    assert "Better on 3 of 4 head metrics with uncertainty weighting, 1 with fixed weights: **uncertainty** wins" \
        in text
    assert "frozen pooled test trunk features" in text


def test_equal_counts_are_a_tie():
    text = markdown({"fixed": _figures(6.0, 0.90, 0.55, 0.70), "uncertainty": _figures(6.5, 0.90, 0.56, 0.70)}, 8)
    assert "**neither (tie)** wins" in text


def test_the_fixed_column_names_its_weights():
    text = markdown({"fixed": _figures(6.0, 0.90, 0.55, 0.70), "uncertainty": _figures(6.5, 0.90, 0.56, 0.70)}, 8,
                    fixed_name="fixed (emotion=1.5)")
    assert text.splitlines()[0] == "| metric | fixed (emotion=1.5) | uncertainty (Kendall et al.) |"
