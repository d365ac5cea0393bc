"""Lightning modules: sparse-label regression, semantic segmentation, instance segmentation."""
