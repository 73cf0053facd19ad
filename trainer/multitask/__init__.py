"""The multi-task face model (age, gender, emotion, ethnicity): spec, network, feature cache, report."""
