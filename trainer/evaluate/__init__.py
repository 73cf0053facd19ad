"""Evaluation: metrics (classification), figures (plots, gallery) and Grad-CAM heatmaps."""
