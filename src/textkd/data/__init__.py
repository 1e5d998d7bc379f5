"""Data layer: presets and local files -> validated `DatasetSplits`, tokenised once, bucketed batches."""
